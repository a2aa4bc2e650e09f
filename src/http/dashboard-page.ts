/**
 * The admin dashboard's page: one HTML document with its CSS and script inline, served by the
 * gateway itself (no build step, no CDN, no chart library). The script fetches
 * `/admin/api/summary` and `/admin/api/receipts` with the token as a Bearer header, draws plain
 * SVG bars, and refreshes every 30 s.
 *
 * Everything the data holds (paths come from callers, routes from the config) goes into the page
 * through `textContent` and attributes, never as HTML, and the Content-Security-Policy admits
 * only this script and this style, by hash: a path crafted as markup stays text.
 *
 * The token: opened as `/dashboard?token=...`, the script keeps it in sessionStorage (this tab
 * only) and takes it out of the address bar, so it is not left in the history or shown on screen;
 * the page is served with `Referrer-Policy: no-referrer`, so explorer links do not carry it away.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #57606a; font-size: 12px; }
.meta code { font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.wrap { white-space: normal; word-break: break-all; }
.big { font-size: 22px; font-weight: 600; }
.low { color: #cf222e; font-weight: 600; }
.bad { color: #cf222e; }
.ok { color: #1a7f37; }
svg { display: block; width: 100%; }
svg .bar { fill: #0969da; }
svg .bar.failed { fill: #cf222e; }
svg text { font-size: 10px; fill: #57606a; }
#error { color: #cf222e; font-weight: 600; }
code { font-family: ui-monospace, monospace; }
`;

/** Runs in the browser: plain ES2020, no modules, no libraries. */
const SCRIPT = `
'use strict';
const TOKEN_KEY = 'x402-gateway-admin-token';
const params = new URLSearchParams(location.search);
if (params.has('token')) {
  sessionStorage.setItem(TOKEN_KEY, params.get('token') || '');
  history.replaceState(null, '', location.pathname);
}
const token = sessionStorage.getItem(TOKEN_KEY) || '';
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? '' : String(c)));
  return node;
}
function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}
function table(headers, rows) {
  const head = el('tr', {}, ...headers.map((h) => el('th', { class: h.num ? 'num' : '' }, h.label)));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows));
}
function fill(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children);
}
function short(hex) { return hex && hex.length > 14 ? hex.slice(0, 8) + '…' + hex.slice(-6) : hex || ''; }
function age(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 120) return seconds + ' s';
  if (seconds < 7200) return Math.floor(seconds / 60) + ' min';
  return Math.floor(seconds / 3600) + ' h';
}
function money(m, symbol) { return m.amount === null ? m.atomic + ' (atomic)' : m.amount + (symbol ? ' ' + symbol : ''); }

/** Vertical bars; values are numbers for the drawing only (the figures shown are exact strings). */
function bars(values, labels, cls) {
  const w = 720, h = 120, pad = 16, n = values.length;
  const max = Math.max(...values, 0) || 1;
  const svg = svgEl('svg', { viewBox: '0 0 ' + w + ' ' + (h + pad), role: 'img' });
  const step = w / n;
  values.forEach((v, i) => {
    const bh = (v / max) * h;
    const rect = svgEl('rect', { class: 'bar' + (cls ? ' ' + cls : ''), x: i * step + 1, y: h - bh, width: Math.max(1, step - 2), height: bh });
    const title = svgEl('title', {});
    title.textContent = labels[i];
    rect.append(title);
    svg.append(rect);
  });
  [0, Math.floor(n / 2), n - 1].forEach((i) => {
    const t = svgEl('text', { x: i * step + 2, y: h + 12 });
    t.textContent = (labels[i] || '').split(':')[0];
    svg.append(t);
  });
  return svg;
}
/** Horizontal bars, one row per label. */
function hbars(rows) {
  const w = 720, rh = 18, lw = 220;
  const max = Math.max(...rows.map((r) => r.value), 0) || 1;
  const svg = svgEl('svg', { viewBox: '0 0 ' + w + ' ' + Math.max(rh, rows.length * rh), role: 'img' });
  rows.forEach((r, i) => {
    const t = svgEl('text', { x: 0, y: i * rh + 12 });
    t.textContent = r.label;
    svg.append(t);
    svg.append(svgEl('rect', { class: 'bar' + (r.cls ? ' ' + r.cls : ''), x: lw, y: i * rh + 3, width: Math.max(1, ((w - lw - 60) * r.value) / max), height: rh - 6 }));
    const v = svgEl('text', { x: w - 56, y: i * rh + 12 });
    v.textContent = r.text;
    svg.append(v);
  });
  return svg;
}

async function api(path) {
  const res = await fetch(path, { headers: { authorization: 'Bearer ' + token }, cache: 'no-store' });
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
  return res.json();
}

function render(s, r) {
  const reload = s.config.lastReload;
  fill('meta',
    'config ', el('code', { id: 'config-hash' }, s.config.hash),
    ' · last reload: ', reload === null ? el('span', { id: 'last-reload' }, 'none since start')
      : el('span', { id: 'last-reload', class: reload.result === 'applied' || reload.result === 'unchanged' ? 'ok' : 'bad' },
          reload.result + ' at ' + reload.at + (reload.problems ? ' (' + reload.problems.join('; ') + ')' : '')),
    ' · generated ', s.generatedAt, ' · window since ', s.window.since);

  fill('revenue-totals', s.revenue.totals.length === 0 ? el('p', {}, 'No revenue in the last 24 h.') : table(
    [{ label: 'asset' }, { label: 'network' }, { label: 'revenue (24 h)', num: true }, { label: 'payments', num: true }],
    s.revenue.totals.map((t) => el('tr', { 'data-asset': t.asset, 'data-atomic': t.atomic },
      el('td', {}, t.asset), el('td', {}, t.network), el('td', { class: 'num amount big' }, money(t, t.symbol)), el('td', { class: 'num count' }, t.count)))));
  fill('revenue-hourly', ...s.revenue.totals.map((t) => el('div', {},
    el('div', { class: 'meta' }, t.asset + ', per hour'),
    bars(t.hourly.map((h) => Number(h.atomic)), t.hourly.map((h, i) => s.window.hourStarts[i].slice(11, 16) + ': ' + money(h, t.symbol))))));
  fill('revenue-routes', s.revenue.byRoute.length === 0 ? el('p', {}, 'No paid routes in the last 24 h.') : el('div', {},
    table([{ label: 'route' }, { label: 'asset' }, { label: 'revenue (24 h)', num: true }, { label: 'payments', num: true }],
      s.revenue.byRoute.map((b) => el('tr', { 'data-route': b.route, 'data-asset': b.asset, 'data-atomic': b.atomic },
        el('td', {}, b.route), el('td', {}, b.asset), el('td', { class: 'num amount' }, money(b, b.symbol)), el('td', { class: 'num count' }, b.count)))),
    hbars(s.revenue.byRoute.map((b) => ({ label: b.route, value: Number(b.atomic), text: money(b, b.symbol) })))));

  const statuses = Object.entries(s.outcomes.receipts.counts);
  fill('outcomes-receipts', table([{ label: 'receipt status' }, { label: 'rows (24 h)', num: true }],
    statuses.map(([k, v]) => el('tr', { 'data-status': k }, el('td', {}, k), el('td', { class: 'num count' }, v)))),
    hbars(statuses.filter(([, v]) => v > 0).map(([k, v]) => ({ label: k, value: v, text: String(v), cls: /failed|refused/.test(k) ? 'failed' : '' }))));
  const requests = Object.entries(s.outcomes.requests.counts);
  fill('outcomes-requests', requests.length === 0 ? el('p', {}, 'No requests yet.') : table([{ label: 'request outcome' }, { label: 'requests', num: true }],
    requests.map(([k, v]) => el('tr', { 'data-outcome': k }, el('td', {}, k), el('td', { class: 'num count' }, v)))));

  const l = s.settlementLatency;
  const sec = (v) => (v === null ? '–' : v.toFixed(3) + ' s');
  fill('latency', el('p', {}, el('span', { id: 'latency-count' }, l.count), ' settlements · mean ', sec(l.meanSeconds), ' · p50 ≈ ', sec(l.p50Seconds), ' · p95 ≈ ', sec(l.p95Seconds)),
    l.count === 0 ? '' : bars(l.buckets.map((b) => b.count), l.buckets.map((b) => '≤ ' + b.le + ' s: ' + b.count)));

  const store = s.settlements.pendingInStore;
  const settlementTable = (rows, extra) => rows.length === 0 ? el('p', {}, 'None.') : table(
    [{ label: 'age' }, { label: 'route' }, { label: 'amount', num: true }, { label: 'payer' }, { label: 'transaction' }, { label: extra }],
    rows.map((x) => el('tr', { 'data-request-id': x.requestId },
      el('td', {}, age(x.ageSeconds)), el('td', {}, x.route), el('td', { class: 'num' }, money(x, x.symbol)), el('td', {}, short(x.payer)),
      el('td', {}, x.explorerUrl ? el('a', { href: x.explorerUrl, rel: 'noreferrer noopener', target: '_blank' }, short(x.transaction)) : short(x.transaction)),
      el('td', { class: 'wrap' }, x.reason))));
  fill('pending', el('p', { class: 'meta' }, store === null ? 'store did not answer' : store.count + ' pending in the whole store' + (store.oldestAgeSeconds === null ? '' : ', oldest ' + age(store.oldestAgeSeconds))),
    settlementTable(s.settlements.pending, 'reason'));
  fill('failed', settlementTable(s.settlements.failed, 'reason'));

  fill('settlers', s.settlers.length === 0 ? el('p', {}, 'No local settler (facilitator settlement, or not read yet).') : table(
    [{ label: 'network' }, { label: 'address' }, { label: 'gas balance', num: true }, { label: 'settle.minBalance', num: true }],
    s.settlers.map((x) => el('tr', { 'data-network': x.network, class: x.low ? 'low' : '' },
      el('td', {}, x.network), el('td', {}, x.address), el('td', { class: 'num' }, x.balance + (x.low ? ' (low)' : '')), el('td', { class: 'num' }, x.minBalance || '')))));

  fill('receipts', r.receipts.length === 0 ? el('p', {}, 'No receipts yet.') : table(
    [{ label: 'time' }, { label: 'status' }, { label: 'route' }, { label: 'path' }, { label: 'amount', num: true }, { label: 'payer' }, { label: 'transaction' }, { label: 'reason' }],
    r.receipts.map((x) => el('tr', { class: 'receipt', 'data-request-id': x.requestId, 'data-status': x.status },
      el('td', {}, x.time.replace('T', ' ').slice(0, 19)), el('td', { class: 'status' }, x.status), el('td', {}, x.route), el('td', { class: 'wrap' }, x.method + ' ' + x.path),
      el('td', { class: 'num amount' }, x.atomic === '' ? '' : money(x, x.symbol)), el('td', { class: 'payer', title: x.payer }, short(x.payer)),
      el('td', {}, x.explorerUrl ? el('a', { class: 'tx', href: x.explorerUrl, rel: 'noreferrer noopener', target: '_blank', title: x.transaction }, short(x.transaction)) : short(x.transaction)),
      el('td', { class: 'wrap' }, x.reason)))));
}

async function refresh() {
  try {
    const [s, r] = await Promise.all([api('/admin/api/summary'), api('/admin/api/receipts?limit=50')]);
    render(s, r);
    fill('error');
    document.body.dataset.state = 'ready';
  } catch (err) {
    fill('error', String(err && err.message ? err.message : err));
    document.body.dataset.state = 'error';
  }
}
refresh();
setInterval(refresh, 30000);
`;

const BODY = `
<h1>x402-gateway</h1>
<div class="meta" id="meta">loading…</div>
<div id="error" role="alert"></div>
<h2>Revenue, last 24 h</h2>
<div class="grid"><div class="card" id="revenue-totals"></div><div class="card" id="revenue-hourly"></div></div>
<h2>Revenue by route</h2>
<div class="card" id="revenue-routes"></div>
<h2>Outcomes</h2>
<div class="grid"><div class="card" id="outcomes-receipts"></div><div class="card" id="outcomes-requests"></div></div>
<h2>Settlement latency</h2>
<div class="card" id="latency"></div>
<h2>Pending settlements</h2>
<div class="card" id="pending"></div>
<h2>Failed settlements (24 h)</h2>
<div class="card" id="failed"></div>
<h2>Settler gas</h2>
<div class="card" id="settlers"></div>
<h2>Last 50 receipts</h2>
<div class="card" id="receipts"></div>
`;

const cspHash = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page, as served at `GET /dashboard`. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>x402-gateway dashboard</title>
<style>${STYLE}</style>
</head>
<body data-state="loading">${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/** The headers the page is served with: only its own script and style may run, and no referrer leaves. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${cspHash(SCRIPT)}`,
    `style-src ${cspHash(STYLE)}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
};
