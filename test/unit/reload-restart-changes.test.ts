/**
 * What a reload cannot move, named in its log: settings bound at start, and the RPC of a settling
 * key whose reconciler and batcher were made with the first config that named the key.
 */
import { describe, expect, it } from 'vitest';
import { restartOnlyChanges } from '../../src/reload.js';
import { parseTestConfig } from '../helpers/gateway.js';

const KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
const PAY_TO = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

function config(options: { rpc?: string; key?: string; port?: number; batch?: string } = {}) {
  return parseTestConfig(`
listen: { host: 127.0.0.1, port: ${options.port ?? 8402} }
payTo: "${PAY_TO}"
networks:
  base: { network: "eip155:8453", rpc: "${options.rpc ?? 'http://127.0.0.1:8545'}", settle: { mode: local, privateKey: "${options.key ?? KEY}"${options.batch ?? ''} } }
upstreams:
  api: { url: "http://127.0.0.1:3000" }
routes:
  - { match: "GET /a", price: "$0.01" }
`);
}

describe('restartOnlyChanges', () => {
  it('names nothing when only what a reload applies changed (settle.batch included)', () => {
    expect(restartOnlyChanges(config(), config({ batch: ', batch: { maxWaitMs: 500 }' }))).toEqual([]);
  });

  it('names listen, and a settling key\'s new RPC (its reconciler and batcher keep the first)', () => {
    expect(restartOnlyChanges(config(), config({ port: 9000, rpc: 'http://127.0.0.1:9545' }))).toEqual([
      'listen',
      "networks.base.rpc (for the settling key's reconciler and batcher)",
    ]);
  });

  it('a new settling key gets its own reconciler and batcher on the new RPC: nothing to name', () => {
    const otherKey = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a';
    expect(restartOnlyChanges(config(), config({ key: otherKey, rpc: 'http://127.0.0.1:9545' }))).toEqual([]);
  });
});
