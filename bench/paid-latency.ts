/**
 * Paid-request latency for both settlement modes, one caller at a time, on a fresh local chain.
 * Payments are signed in advance with the official v2 client, so the figures are the gateway's
 * (verify, reserve, proxy, settle on chain, respond), not the client's signing.
 *
 *   npx tsx bench/paid-latency.ts [requests per mode, default 200]
 *
 * Modes are interleaved (after, before, after, ...) so chain growth affects both alike.
 */
import { pino } from 'pino';
import { request } from 'undici';
import { parseConfigText } from '../src/config/load.js';
import { SqliteLedger } from '../src/ledger/sqlite-ledger.js';
import { runGateway } from '../src/server.js';
import { challengeOf, PAYEE, SETTLER_KEY, startChainWorld, v2HttpClient } from '../test/helpers/chain-world.js';
import { startUpstream } from '../test/helpers/upstream.js';

const n = Number(process.argv[2] ?? 200);
const world = await startChainWorld();
const upstream = await startUpstream();
const parsed = parseConfigText(
  `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
payTo: "${PAYEE}"
networks:
  base: { network: "eip155:8453", rpc: "${world.chain.rpcUrl}", settle: { mode: local, privateKey: "${SETTLER_KEY}" } }
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /after/weather", price: "$0.01" }
  - { match: "GET /before/weather", price: "$0.01", settlement: before }
`,
  {},
);
if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
const gw = await runGateway(parsed.config, { logger: pino({ level: 'silent' }), ledger: new SqliteLedger(':memory:') });

const http = v2HttpClient();
const modes = ['after', 'before'] as const;
const headers: Record<(typeof modes)[number], Record<string, string>[]> = { after: [], before: [] };
for (const mode of modes) {
  const challenge = await challengeOf(http, `${gw.url}/${mode}/weather`);
  for (let i = 0; i < n; i++) headers[mode].push(http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge)));
}

const times: Record<(typeof modes)[number], number[]> = { after: [], before: [] };
for (let i = 0; i < n; i++) {
  for (const mode of modes) {
    const started = performance.now();
    const res = await request(`${gw.url}/${mode}/weather`, { headers: headers[mode][i] });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${mode} #${i}: status ${res.statusCode}`);
    times[mode].push(performance.now() - started);
  }
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
for (const mode of modes) {
  const sorted = [...times[mode]].sort((a, b) => a - b);
  console.log(`settlement: ${mode.padEnd(6)}  n=${n}  median ${pct(sorted, 50).toFixed(1)} ms  p99 ${pct(sorted, 99).toFixed(1)} ms`);
}

await gw.close();
await upstream.close();
await world.stop();
