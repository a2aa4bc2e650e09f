/**
 * The JSON-RPC transport over undici, against a real HTTP server on a loopback port: its
 * failures must be classified exactly as viem's own http transport's are, because "never reached
 * the node" versus "unclear" decides whether a settlement may have moved money.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicClient, parseAbi, type Transport } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isContractFailure, neverReachedNode, nodeRefused } from '../../src/payments/chain/rpc-errors.js';
import { RpcConnections } from '../../src/payments/chain/rpc-connections.js';
import { closedLoopbackUrl } from '../helpers/free-ports.js';

type Handler = (body: { id: number; method: string; params: unknown[] }, req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let base: string;
let handler: Handler = () => {};
const connections = new RpcConnections();

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => handler(JSON.parse(text) as Parameters<Handler>[0], req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await connections.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function client(transport: Transport) {
  return createPublicClient({ transport });
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
}

describe('RpcConnections transport', () => {
  it('sends one JSON-RPC request and returns its result through viem', async () => {
    const seen: { method: string; params: unknown[]; auth: string | undefined }[] = [];
    handler = (body, req, res) => {
      seen.push({ method: body.method, params: body.params, auth: req.headers.authorization });
      json(res, 200, { jsonrpc: '2.0', id: body.id, result: '0x2a' });
    };
    expect(await client(connections.transport(`${base}/rpc`, 1_000)).getBlockNumber({ cacheTime: 0 })).toBe(42n);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'eth_blockNumber', auth: undefined });
  });

  it('turns URL credentials into basic auth and keeps them out of error messages', async () => {
    let auth: string | undefined;
    handler = (_body, req, res) => {
      auth = req.headers.authorization;
      json(res, 500, { oops: true });
    };
    const url = `${base.replace('http://', 'http://user:s%40cret@')}/rpc`;
    const err = await failure(client(connections.transport(url, 1_000)).getBlockNumber({ cacheTime: 0 }));
    expect(auth).toBe(`Basic ${Buffer.from('user:s@cret').toString('base64')}`);
    expect(String(err)).not.toContain('cret');
  });

  it('a JSON-RPC error object: the node refused it', async () => {
    handler = (body, _req, res) => json(res, 200, { jsonrpc: '2.0', id: body.id, error: { code: -32000, message: 'nonce too low' } });
    const err = await failure(client(connections.transport(base, 1_000)).getBlockNumber({ cacheTime: 0 }));
    expect(nodeRefused(err)).toBe(true);
    expect(neverReachedNode(err)).toBe(false);
    expect(String(err)).toContain('nonce too low');
  });

  it('a 5xx status: reached, not refused, not "never reached"', async () => {
    handler = (_body, _req, res) => json(res, 502, { error: 'bad gateway' });
    const err = await failure(client(connections.transport(base, 1_000)).getBlockNumber({ cacheTime: 0 }));
    expect(neverReachedNode(err)).toBe(false);
    expect(nodeRefused(err)).toBe(false);
    expect(String(err)).toMatch(/502/);
  });

  it('no answer in time: a timeout, which may have reached the node', async () => {
    handler = () => {}; // never answers
    const err = await failure(client(connections.transport(base, 200)).getBlockNumber({ cacheTime: 0 }));
    expect(String(err)).toMatch(/took too long|timed out/i);
    expect(neverReachedNode(err)).toBe(false);
  });

  it('a closed port: provably never reached the node', async () => {
    const err = await failure(client(connections.transport(await closedLoopbackUrl(), 1_000)).getBlockNumber({ cacheTime: 0 }));
    expect(neverReachedNode(err)).toBe(true);
  });

  it('a node\'s -32603 "Internal error" on a contract read is a fault, not a revert; a real revert is a contract failure', async () => {
    const read = () =>
      client(connections.transport(base, 1_000)).readContract({
        address: '0x0000000000000000000000000000000000000004',
        abi: parseAbi(['function balanceOf(address) view returns (uint256)']),
        functionName: 'balanceOf',
        args: ['0x0000000000000000000000000000000000000001'],
      });
    handler = (body, _req, res) => json(res, 200, { jsonrpc: '2.0', id: body.id, error: { code: -32603, message: 'Internal error' } });
    expect(isContractFailure(await failure(read()))).toBe(false);
    handler = (body, _req, res) => json(res, 200, { jsonrpc: '2.0', id: body.id, error: { code: 3, message: 'execution reverted', data: '0x' } });
    expect(isContractFailure(await failure(read()))).toBe(true);
    handler = (body, _req, res) =>
      json(res, 200, { jsonrpc: '2.0', id: body.id, error: { code: -32603, message: 'execution reverted: FiatToken: paused' } });
    expect(isContractFailure(await failure(read()))).toBe(true);
  });

  it('an answer that is not JSON is a fault, not a result', async () => {
    handler = (_body, _req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>captive portal</html>');
    };
    const err = await failure(client(connections.transport(base, 1_000)).getBlockNumber({ cacheTime: 0 }));
    expect(String(err)).toMatch(/not JSON/);
    expect(neverReachedNode(err)).toBe(false);
  });
});
