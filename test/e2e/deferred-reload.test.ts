/**
 * A reload that changes `settle.batch` reaches the key's batcher, which outlives the config it was
 * made with: deferred routes decide what to queue by the reloaded terms, so the batcher must flush
 * by them too. Here a payment queued under a minute's batch wait settles soon after a reload
 * shortens the wait, on chain.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningGateway } from '../../src/server.js';
import { PAYEE, startChainWorld, v2Fetch, type ChainWorld } from '../helpers/chain-world.js';
import { deferredBase, finalStatuses, MILLI, receiptOf, settlementStatus, statusUrlOf } from '../helpers/deferred.js';
import { gatewayYamlHead, startGatewayFromFile } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway | undefined;

beforeAll(async () => {
  [world, upstream] = await Promise.all([startChainWorld(), startUpstream()]);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

it('a reload that shortens settle.batch.maxWaitMs makes the running batcher flush by the new wait', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'x402-deferred-reload-')), 'gateway.yaml');
  const yaml = (maxWaitMs: number) => `${gatewayYamlHead({ payTo: PAYEE, network: deferredBase(world.chain.rpcUrl, `maxSize: 50, maxWaitMs: ${maxWaitMs}`) })}
upstreams:
  api: { url: "${upstream.url}" }
reload: { watch: false }
routes:
  - { match: "GET /cheap", price: "$0.001", settlement: deferred }
`;
  writeFileSync(path, yaml(60_000));
  gw = await startGatewayFromFile(path);

  const payeeBefore = await world.balance(PAYEE);
  const res = await v2Fetch()(`${gw.url}/cheap`);
  expect(res.status).toBe(200);
  const status = statusUrlOf(receiptOf(res));
  // Under the first terms the payment waits a minute for its batch.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  expect((await settlementStatus(status)).status).toBe('queued');
  expect(await world.balance(PAYEE)).toBe(payeeBefore);

  writeFileSync(path, yaml(500));
  expect(await gw.reload()).toMatchObject({ result: 'applied' });
  const [final] = await finalStatuses([status], 10_000);
  expect(final).toMatchObject({ status: 'settled', transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
  expect(await world.balance(PAYEE)).toBe(payeeBefore + MILLI);
}, 60_000);
