/**
 * The PrometheusRule and the Grafana dashboard under deploy/ only name metrics the gateway
 * exports (a renamed metric would silently blind an alert), and are well formed.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../src/metrics.js';

const METRIC = /\bx402_gateway_[a-z0-9_]+/g;

/** Every series name the gateway exports, histograms with their _bucket, _sum and _count. */
async function exported(): Promise<Set<string>> {
  const metrics = new GatewayMetrics();
  // As server.ts does: the settlement and queue gauges and the reconciler's counters join the registry here.
  metrics.watchSettlements(async () => ({ count: 0, oldestTimeMs: undefined }), () => 0);
  metrics.watchQueue(async () => ({ count: 0, amounts: new Map(), oldestQueuedAtMs: undefined }), () => undefined, () => 0);
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly labels: { readonly severity: string };
  readonly annotations: { readonly summary: string; readonly runbook: string };
}

const rules = (): Rule[] => {
  const doc = parse(readFileSync(new URL('../../deploy/prometheus/alerts.yaml', import.meta.url), 'utf8')) as { kind: string; spec: { groups: { rules: Rule[] }[] } };
  expect(doc.kind).toBe('PrometheusRule');
  return doc.spec.groups.flatMap((g) => g.rules);
};

const dashboardExprs = (): string[] => {
  const doc = JSON.parse(readFileSync(new URL('../../deploy/grafana/x402-gateway.json', import.meta.url), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
  return doc.panels.flatMap((p) => p.targets.map((t) => t.expr));
};

describe('deploy/prometheus and deploy/grafana', () => {
  it('alert on settlements, pending age, RPC, settler balance, config reloads and the ledger, each with a severity and a runbook in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const anchors = new Set([...readme.matchAll(/^#### (Runbook: .+)$/gm)].map((m) => `README.md#${(m[1] ?? '').toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')}`));
    const all = rules();
    const used = all.map((r) => r.expr).join('\n');
    for (const metric of ['settlements_total', 'oldest_pending_settlement_seconds', 'infrastructure_errors_total', 'settler_balance_low', 'config_reloads_total', 'ledger_errors_total', 'ledger_up']) {
      expect(used).toContain(`x402_gateway_${metric}`);
    }
    for (const rule of all) {
      expect(['warning', 'critical']).toContain(rule.labels.severity);
      expect(anchors.has(rule.annotations.runbook), `${rule.alert}: ${rule.annotations.runbook}`).toBe(true);
    }
  });

  it('use only metrics the gateway exports', async () => {
    const names = await exported();
    const used = new Set([...rules().map((r) => r.expr), ...dashboardExprs()].flatMap((e) => [...e.matchAll(METRIC)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((name) => !names.has(name))).toEqual([]);
  });
});
