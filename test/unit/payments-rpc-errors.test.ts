/**
 * Classifying chain errors: the difference between "the contract said no", "nothing reached a
 * node" and "unclear" decides whether a settlement may have moved money.
 */
import {
  ContractFunctionRevertedError,
  ExecutionRevertedError,
  HttpRequestError,
  RpcRequestError,
  TimeoutError,
  encodeErrorResult,
  parseAbi,
} from 'viem';
import { describe, expect, it } from 'vitest';
import { chainDefinition, createChainClient, rpcTransport } from '../../src/payments/chain/client.js';
import {
  failureText,
  isContractFailure,
  isOutOfGas,
  neverReachedNode,
  nodeRefused,
  reasonForTransferFailure,
  sendRejected,
} from '../../src/payments/chain/rpc-errors.js';
import type { NetworkConfig } from '../../src/config/types.js';

const URL_ = 'http://127.0.0.1:8545';

/** What undici's fetch throws when the port is closed, as viem wraps it. */
function connectionRefused(): HttpRequestError {
  const socket = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8545'), { code: 'ECONNREFUSED' });
  return new HttpRequestError({ url: URL_, cause: new TypeError('fetch failed', { cause: socket }) });
}

describe('reasonForTransferFailure (the reference mapping)', () => {
  it.each([
    ['FiatTokenV2: authorization is expired', 'invalid_exact_evm_payload_authorization_valid_before'],
    ['FiatTokenV2: authorization is not yet valid', 'invalid_exact_evm_payload_authorization_valid_after'],
    ['FiatTokenV2: authorization is used or canceled', 'invalid_exact_evm_nonce_already_used'],
    ['ERC20: transfer amount exceeds balance', 'invalid_exact_evm_insufficient_balance'],
    ['FiatTokenV2: invalid signature', 'invalid_exact_evm_signature'],
    ["ECRecover: invalid signature 's' value", 'invalid_exact_evm_signature'],
    ['Pausable: paused', 'invalid_exact_evm_transaction_failed'],
  ])('%s → %s', (text, reason) => {
    expect(reasonForTransferFailure(text)).toBe(reason);
  });

  it('reads the revert reason, not viem\'s whole message (which names validBefore and Authorization)', () => {
    const data = encodeErrorResult({
      abi: parseAbi(['error Error(string)']),
      errorName: 'Error',
      args: ['Blacklistable: account is blacklisted'],
    });
    const err = new ContractFunctionRevertedError({ abi: [], data, functionName: 'transferWithAuthorization' });
    expect(failureText(err)).toBe('Blacklistable: account is blacklisted');
    expect(reasonForTransferFailure(failureText(err))).toBe('invalid_exact_evm_transaction_failed');
  });
});

describe('error classification', () => {
  it('a refused connection never reached a node', () => {
    const err = connectionRefused();
    expect(neverReachedNode(err)).toBe(true);
    expect(nodeRefused(err)).toBe(false);
    expect(isContractFailure(err)).toBe(false);
  });

  it('a refused connection reported as an AggregateError (happy eyeballs) never reached a node', () => {
    const socket = Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], 'all failed'), {
      code: 'ECONNREFUSED',
    });
    expect(neverReachedNode(new HttpRequestError({ url: URL_, cause: new TypeError('fetch failed', { cause: socket }) }))).toBe(true);
  });

  it('a timeout may have reached the node', () => {
    expect(neverReachedNode(new TimeoutError({ body: {}, url: URL_ }))).toBe(false);
    // Even when a refused connection to a second endpoint is also in the chain.
    const both = new HttpRequestError({ url: URL_, cause: Object.assign(new TimeoutError({ body: {}, url: URL_ }), { cause: connectionRefused() }) });
    expect(neverReachedNode(both)).toBe(false);
  });

  it('an HTTP status means a server answered: not "never reached"', () => {
    expect(neverReachedNode(new HttpRequestError({ url: URL_, status: 502, cause: connectionRefused() }))).toBe(false);
  });

  it('a JSON-RPC error object is the node refusing', () => {
    const err = new RpcRequestError({ body: {}, error: { code: -32000, message: 'nonce too low' }, url: URL_ });
    expect(nodeRefused(err)).toBe(true);
    expect(failureText(err)).toBe('nonce too low');
  });

  it('a revert is the contract answering', () => {
    expect(isContractFailure(new ExecutionRevertedError({ message: 'execution reverted: FiatTokenV2: authorization is expired' }))).toBe(true);
    expect(isContractFailure(new ContractFunctionRevertedError({ abi: [], functionName: 'authorizationState' }))).toBe(true);
  });

  it('a call out of the gas it was given: anvil\'s -32603 and geth\'s -32000 words, nothing else', () => {
    const rpc = (code: number, message: string) => new RpcRequestError({ body: {}, error: { code, message }, url: URL_ });
    expect(isOutOfGas(rpc(-32603, 'EVM error OutOfGas'))).toBe(true);
    expect(isOutOfGas(rpc(-32000, 'out of gas'))).toBe(true);
    expect(isOutOfGas(rpc(-32603, 'Internal error'))).toBe(false);
    expect(isOutOfGas(new ExecutionRevertedError({ message: 'execution reverted' }))).toBe(false);
    expect(isOutOfGas(connectionRefused())).toBe(false);
  });
});

describe('sendRejected: a refused raw transaction provably kept out of the pool', () => {
  const rpc = (code: number, message: string) => new RpcRequestError({ body: {}, error: { code, message }, url: URL_ });
  it.each([
    'nonce too low',
    'replacement transaction underpriced',
    'insufficient funds for gas * price + value',
    'max fee per gas less than block base fee',
    'intrinsic gas too low',
  ])('%s: rejected', (message) => {
    expect(sendRejected(rpc(-32000, message))).toBe(true);
  });
  it.each([
    [-32603, 'Internal error'],
    [-32000, 'request timed out'],
    [-32000, 'already known'],
  ])('%s %s: unclear, it may be in the pool', (code, message) => {
    expect(sendRejected(rpc(code, message))).toBe(false);
  });
  it('a refused connection is not a rejection (neverReachedNode says that)', () => {
    expect(sendRejected(connectionRefused())).toBe(false);
  });
});

describe('chain client', () => {
  const network: NetworkConfig = {
    name: 'base',
    caip2: 'eip155:8453',
    chainId: 8453,
    v1Name: 'base',
    rpc: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
    verify: 'local',
    settle: { mode: 'facilitator', facilitators: [] },
    multicall3: undefined,
    proofConfirmations: 1,
    proofMaxAgeSeconds: 3600,
  };

  it('defines the chain with no multicall3 contract (fresh anvil has none)', () => {
    const chain = chainDefinition(network);
    expect(chain.id).toBe(8453);
    expect(chain.contracts?.multicall3).toBeUndefined();
    expect(chain.rpcUrls.default.http).toEqual(network.rpc);
  });

  it('polls quickly by default', () => {
    expect(createChainClient(network).pollingInterval).toBe(100);
    expect(createChainClient(network, { pollingIntervalMs: 500 }).pollingInterval).toBe(500);
  });

  it('refuses a network without endpoints', () => {
    expect(() => rpcTransport({ ...network, rpc: [] })).toThrow(/no RPC endpoint/);
  });
});
