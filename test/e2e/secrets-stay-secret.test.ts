/**
 * Secrets stay secret (issue 14, item 6). An RPC URL carries its provider's API key in its path
 * or query, a facilitator URL may carry credentials, the settler's key and the upstream's
 * credentials are in the config, and an attacker can make RPC calls fail at will (by burning
 * the provider's quota). Whatever the gateway writes while that happens (every log line at
 * trace level, every answer on the public and admin listeners, the ledger's rows, the CLI's
 * output) must name endpoints by their origin only and say faults in its own words.
 *
 * The RPC endpoint is a real anvil behind a provider-like proxy that answers only at the secret
 * path and query, and whose error pages echo the request target, as many servers' do. A second
 * endpoint, with secrets of its own, is dead. The facilitator's error pages echo its target too.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli-io.js';
import { runCli } from '../../src/cli.js';
import { loggerOptions } from '../../src/log.js';
import type { RunningGateway } from '../../src/server.js';
import { PAYEE, SETTLER_KEY, startChainWorld, v1Fetch, v2Fetch, v2HttpClient, challengeOf, type ChainWorld } from '../helpers/chain-world.js';
import { startFakeFacilitator, type FakeFacilitator } from '../helpers/facilitator.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';
import { gatewayYamlHead, startGatewayFromFile } from '../helpers/gateway.js';
import { send, type RawResponse } from '../helpers/http.js';
import { startRpcProxy, type RpcFault, type RpcProxy } from '../helpers/rpc-proxy.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/** Each secret by what it is; lower-case, as captured text is searched lower-cased. */
const SECRETS = {
  rpcPathKey: 'rpcpathkey5c2a9e7b41d0f3',
  rpcQueryKey: 'rpcquerykey8e1f04c6d3a2',
  rpcPassword: 'rpcpassword0b7d13e9',
  deadRpcPathKey: 'deadrpcpathkey6a4f29c1',
  deadRpcQueryKey: 'deadrpcquerykey3d8b7e05',
  settlerKey: SETTLER_KEY.toLowerCase(),
  settlerKeyHex: SETTLER_KEY.slice(2).toLowerCase(),
  facilitatorPassword: 'facpassword4e9c1a7d',
  facilitatorPathKey: 'facpathkey2b6d8f03e1',
  facilitatorQueryKey: 'facquerykey7c0a5e9b24',
  facilitatorHeader: 'facheadertoken91d3f7a2',
  upstreamPassword: 'uppassword5f2e8c0b',
  upstreamToken: 'uptoken3a7c9e1d5b',
  deadUpstreamPassword: 'deaduppassword8b1f4d',
} as const;

/** Everything the gateway wrote or answered, as text. */
const captured: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    captured.push(chunk.toString('utf8'));
    done();
  },
});

let world: ChainWorld;
let rpc: RpcProxy;
let facilitator: FakeFacilitator;
let upstream: TestUpstream;
let gw: RunningGateway | undefined;
let configPath: string;
let yaml: string;
/** The dead endpoint, with secrets of its own. */
let deadRpc: string;
const env: Record<string, string> = { SETTLER_KEY, UPSTREAM_TOKEN: SECRETS.upstreamToken, FACILITATOR_TOKEN: SECRETS.facilitatorHeader };

/** A response as text: status, every header (base64 payment headers decoded too) and the body. */
function keep(status: number, headers: Iterable<[string, string]>, body: string): void {
  const lines = [`HTTP ${status}`];
  for (const [name, value] of headers) {
    lines.push(`${name}: ${value}`);
    if (/payment/i.test(name)) lines.push(`${name} (decoded): ${Buffer.from(value, 'base64').toString('utf8')}`);
  }
  captured.push(`${lines.join('\n')}\n\n${body}`);
}

function keepRaw(res: RawResponse): RawResponse {
  keep(res.status, Object.entries(res.headers).map(([name, value]) => [name, String(value)]), res.text());
  return res;
}

async function keepFetched(res: Response): Promise<{ status: number; body: string }> {
  const body = await res.text();
  keep(res.status, res.headers.entries(), body);
  return { status: res.status, body };
}

/** The two RPC endpoints in the order given, in the config's words. */
const rpcList = (urls: readonly string[]) => `rpc: [${urls.map((u) => `"${u}"`).join(', ')}]`;

/** A fresh signed v2 payment header for `path`'s challenge. */
async function paymentFor(path: string): Promise<Record<string, string>> {
  const http = v2HttpClient();
  const challenge = await challengeOf(http, `${gw?.url}${path}`);
  return http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge));
}

function cliIo(): CliIo {
  return { env, out: (line) => void captured.push(line), err: (line) => void captured.push(line), onSignal: () => {} };
}

/** A payment whose verification meets `fault`: 503 GW_ERR_CHAIN_UNAVAILABLE, never free access. */
async function verificationFault(fault: RpcFault): Promise<void> {
  const header = await paymentFor('/weather');
  await rpc.fail(fault);
  try {
    const res = keepRaw(await send(gw?.url ?? '', 'GET', '/weather', { headers: header }));
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({ code: 'GW_ERR_CHAIN_UNAVAILABLE' });
  } finally {
    await rpc.heal();
  }
}

/** A payment verified and forwarded whose settlement meets `fault` before anything is sent: 402. */
async function settlementFault(fault: RpcFault): Promise<void> {
  const header = await paymentFor('/slow');
  const seen = upstream.seen.length;
  const pending = send(gw?.url ?? '', 'GET', '/slow', { headers: header });
  // The chain fails while the upstream works (it answers /slow after 2 s).
  await waitFor(() => upstream.seen.length > seen);
  await rpc.fail(fault);
  try {
    expect(keepRaw(await pending).status).toBe(402);
  } finally {
    await rpc.heal();
  }
}

beforeAll(async () => {
  world = await startChainWorld();
  rpc = await startRpcProxy({
    target: world.chain.rpcUrl,
    secretTarget: `/v2/${SECRETS.rpcPathKey}?key=${SECRETS.rpcQueryKey}`,
    userinfo: `rpcuser:${SECRETS.rpcPassword}`,
  });
  deadRpc = `${await closedLoopbackUrl()}/v3/${SECRETS.deadRpcPathKey}?apikey=${SECRETS.deadRpcQueryKey}`;
  // Error pages that quote what they were sent, as a misconfigured or overloaded server's do.
  facilitator = await startFakeFacilitator((req) => ({
    status: 500,
    body: `<pre>Cannot ${req.method} ${req.path} (x-api-key ${String(req.headers['x-api-key'])})</pre>`,
    headers: { 'content-type': 'text/html' },
  }));
  const facilitatorUrl = facilitator.url.replace('http://', `http://facuser:${SECRETS.facilitatorPassword}@`);
  upstream = await startUpstream();
  const upstreamUrl = upstream.url.replace('http://', `http://upuser:${SECRETS.upstreamPassword}@`);
  const deadUpstream = (await closedLoopbackUrl()).replace('http://', `http://deaduser:${SECRETS.deadUpstreamPassword}@`);

  const dir = mkdtempSync(join(tmpdir(), 'x402-secrets-'));
  const ledgerPath = join(dir, 'ledger.db');
  configPath = join(dir, 'gateway.yaml');
  const networks = [
    `base: { network: "eip155:8453", ${rpcList([rpc.url, deadRpc])}, settle: { mode: local, privateKey: "\${SETTLER_KEY}", receiptTimeoutMs: 1500 } }`,
    `  basesepolia: { network: "eip155:84532", settle: { mode: facilitator, url: "${facilitatorUrl}/${SECRETS.facilitatorPathKey}/x402?apiKey=${SECRETS.facilitatorQueryKey}", headers: { x-api-key: "\${FACILITATOR_TOKEN}" } } }`,
  ].join('\n');
  yaml = `${gatewayYamlHead({ payTo: PAYEE, network: networks })}
upstreams:
  api: { url: "${upstreamUrl}", headers: { authorization: "Bearer \${UPSTREAM_TOKEN}" } }
  dead: { url: "${deadUpstream}" }
defaults: { accepts: [usdc@base], upstream: api }
routes:
  - { match: "GET /weather", price: "$0.01", description: Weather }
  - { match: "GET /slow", price: "$0.01" }
  - { match: "GET /elsewhere/weather", price: "$0.01", accepts: [usdc@basesepolia] }
  - { match: "GET /dead/thing", price: free, upstream: dead }
ledger: { path: "${ledgerPath}" }
log: { level: trace }
`;
  writeFileSync(configPath, yaml);
  gw = await startGatewayFromFile(configPath, { env, ledgerPath, logger: pino(loggerOptions('trace'), logSink) });
  // The start-up checks (facilitator /supported, asset metadata) report in the background.
  await waitFor(() => captured.some((text) => text.includes('facilitator')));
});

afterAll(async () => {
  await gw?.close();
  await rpc?.close();
  await facilitator?.close();
  await upstream?.close();
  await world?.stop();
});

describe('a secret-bearing RPC endpoint', () => {
  it('carries paid requests: v2 and v1 settle through it', async () => {
    expect((await keepFetched(await v2Fetch()(`${gw?.url}/weather`))).status).toBe(200);
    expect((await keepFetched(await (await v1Fetch())(`${gw?.url}/weather`))).status).toBe(200);
    expect(rpc.methods).toContain('eth_sendRawTransaction');
  });

  it.each<RpcFault>(['status_500', 'hang', 'refuse'])('fails verification (%s): a 503 that names no secret', verificationFault);
  it.each<RpcFault>(['status_500', 'hang', 'refuse'])('fails settlement before the send (%s): refused, nothing charged', settlementFault);

  it('fails the send itself: the settlement is unclear and stays pending', async () => {
    const header = await paymentFor('/weather');
    await rpc.fail('status_500', ['eth_sendRawTransaction']);
    try {
      const res = keepRaw(await send(gw?.url ?? '', 'GET', '/weather', { headers: header }));
      expect(res.status).toBe(402);
    } finally {
      await rpc.heal();
    }
    // The reconciler sends the logged transaction again once the endpoint answers.
    await waitFor(async () => (await gw?.ledger.pendingReceipts())?.count === 0, 20_000);
  });
});

// viem's fallback reports the last endpoint's fault: with the dead one first, the secret-bearing
// one's own failures (its echoing error page, its timeouts) are the ones the gateway hears of.
describe('the same endpoints, the dead one tried first', () => {
  beforeAll(async () => {
    const before = gw?.config.hash;
    writeFileSync(configPath, yaml.replace(rpcList([rpc.url, deadRpc]), rpcList([deadRpc, rpc.url])));
    // The file watch may have applied it already.
    expect((await gw?.reload())?.result).toMatch(/^(applied|unchanged)$/);
    expect(gw?.config.hash).not.toBe(before);
  });
  afterAll(async () => {
    writeFileSync(configPath, yaml);
    await gw?.reload();
  });

  it('carries a paid request', async () => {
    expect((await keepFetched(await v2Fetch()(`${gw?.url}/weather`))).status).toBe(200);
  });
  it.each<RpcFault>(['status_500', 'hang', 'refuse'])('fails verification (%s): a 503 that names no secret', verificationFault);
  it.each<RpcFault>(['status_500', 'refuse'])('fails settlement before the send (%s): refused, nothing charged', settlementFault);
});

describe('other faults and endpoints', () => {
  it('a facilitator that fails: a 502 that names no secret', async () => {
    const res = await keepFetched(await v2Fetch()(`${gw?.url}/elsewhere/weather`));
    expect(res.status).toBe(502);
    expect(facilitator.requests.some((r) => r.path === `/${SECRETS.facilitatorPathKey}/x402/verify?apiKey=${SECRETS.facilitatorQueryKey}`)).toBe(true);
  });

  it('an upstream that is down: a 502', async () => {
    expect(keepRaw(await send(gw?.url ?? '', 'GET', '/dead/thing')).status).toBe(502);
  });

  it('discovery, health, readiness, metrics and reload', async () => {
    const url = gw?.url ?? '';
    const adminUrl = gw?.adminUrl ?? '';
    expect(keepRaw(await send(url, 'GET', '/.well-known/x402')).status).toBe(200);
    expect(keepRaw(await send(url, 'GET', '/weather')).status).toBe(402);
    for (const path of ['/healthz', '/readyz', '/metrics']) expect(keepRaw(await send(adminUrl, 'GET', path)).status).toBe(200);
    expect(keepRaw(await send(adminUrl, 'POST', '/admin/reload')).status).toBe(200);
    // A changed facilitator list is checked again; an invalid file is refused with its problems.
    writeFileSync(configPath, yaml.replace('x-api-key: "${FACILITATOR_TOKEN}"', 'x-api-key: "${FACILITATOR_TOKEN}", authorization: "Bearer ${FACILITATOR_TOKEN}"'));
    expect(keepRaw(await send(adminUrl, 'POST', '/admin/reload')).status).toBe(200);
    writeFileSync(configPath, yaml.replace(`key=${SECRETS.rpcQueryKey}`, `key=${SECRETS.rpcQueryKey} broken`).replace('privateKey: "${SETTLER_KEY}"', 'privateKey: "${SETTLER_KEY}0"'));
    expect(keepRaw(await send(adminUrl, 'POST', '/admin/reload')).status).toBe(422);
    writeFileSync(configPath, yaml);
    expect(keepRaw(await send(adminUrl, 'POST', '/admin/reload')).status).toBe(200);
    for (const path of ['/readyz', '/metrics']) keepRaw(await send(adminUrl, 'GET', path));
  });

  it('the receipts command and the ledger rows', async () => {
    for (const format of [[], ['--json'], ['--csv']]) expect(await runCli(['receipts', '--config', configPath, ...format], cliIo())).toBe(0);
    expect(await runCli(['validate', '--config', configPath], cliIo())).toBe(0);
    captured.push(JSON.stringify(await gw?.ledger.receipts({ limit: 1000 })));
  });
});

it('none of it names a secret: not in a log line, an answer, a row or the CLI output', async () => {
  await gw?.close();
  gw = undefined;
  const text = captured.join('\n').toLowerCase();
  // Per secret: how often it appears, and where first (so a failure says what leaked, and how).
  const leaks: Record<string, string> = {};
  for (const [name, secret] of Object.entries(SECRETS)) {
    const count = text.split(secret).length - 1;
    const at = text.indexOf(secret);
    if (count > 0) leaks[name] = `${count}x, first in …${text.slice(Math.max(0, at - 200), at + secret.length + 40).replace(/\s+/g, ' ')}…`;
  }
  expect(leaks).toEqual({});
  // The test reached what it means to cover: both endpoints' faults and the facilitator's, said.
  expect(text).toContain('"msg":"infrastructure fault"');
  expect(text).toMatch(/answered http 500 \(http:\/\/127\.0\.0\.1:\d+\)/);
  expect(text).toMatch(/timed out \(http:\/\/127\.0\.0\.1:\d+\)/);
  expect(text).toMatch(/connection refused \(econnrefused\) \(http:\/\/127\.0\.0\.\d+:1\)/);
  expect(text).toMatch(/post \/verify to http:\/\/127\.0\.0\.1:\d+ answered 500/);
  // And the secrets searched for are the ones the gateway was given.
  expect(readFileSync(configPath, 'utf8')).toContain(SECRETS.rpcPathKey);
});
