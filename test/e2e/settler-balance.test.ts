/**
 * The settler's gas balance on a real chain: exported as `x402_gateway_settler_balance_wei`,
 * named in /readyz, and below `settle.minBalance` a warning line while the replica stays ready.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggerOptions } from '../../src/log.js';
import type { RunningGateway } from '../../src/server.js';
import { localSettlementBase, PAYEE, SETTLER_KEY, startChainWorld, type ChainWorld } from '../helpers/chain-world.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const SETTLER = privateKeyToAccount(SETTLER_KEY).address;
const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  // anvil's dev accounts hold 10,000 ETH: a floor of 20,000 makes this settler low.
  gw = await startGateway(
    `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(world.chain.rpcUrl, ', minBalance: "20000 ETH"') })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`,
    { logger: pino(loggerOptions('info'), sink) },
  );
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

describe('the settler gas balance', () => {
  it('is exported, named in /readyz with the floor, and warned about below settle.minBalance; the replica stays ready', async () => {
    const onChain = await world.admin.getBalance({ address: SETTLER });
    await waitFor(async () => (await gw.metrics.settlerBalance.get()).values.length > 0);
    const { values } = await gw.metrics.settlerBalance.get();
    expect(values).toEqual([{ labels: { network: 'base', address: SETTLER }, value: Number(onChain) }]);
    expect((await gw.metrics.settlerBalanceLow.get()).values).toEqual([{ labels: { network: 'base', address: SETTLER }, value: 1 }]);

    const ready = await send(gw.adminUrl, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      settlers: [{ network: 'base', address: SETTLER, balanceWei: onChain.toString(), minBalanceWei: (20_000n * 10n ** 18n).toString(), low: true }],
    });
    const warning = lines.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('settler gas balance below settle.minBalance'));
    expect(warning).toMatchObject({ level: 40, network: 'base', address: SETTLER, balanceWei: onChain.toString(), low: true });
  });
});
