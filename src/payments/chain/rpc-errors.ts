/**
 * What a failed chain call tells us. viem wraps errors several layers deep (contract error →
 * call/estimate error → RPC error → HTTP error → fetch's TypeError → the socket error), so each
 * question here walks the whole `cause` chain, including `AggregateError.errors` (Node's
 * happy-eyeballs connect reports one error per address tried).
 *
 * `errorChain` and `clip` are also the facilitator client's and describe-fault.ts's: one walker
 * of cause chains and one rule for cutting third-party text short, for every network fault the
 * gateway reads. The text these functions read (`failureText`) decides what a failure means;
 * what our messages say of a fault is describe-fault.ts's, which never quotes it.
 */
import {
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  ExecutionRevertedError,
  HttpRequestError,
  RawContractError,
  RpcRequestError,
  TimeoutError,
} from 'viem';
import { NOT_SENT_ERROR_CODES } from './connection-errors.js';
import { REASON, type ExactEvmReason } from '../../protocol/reasons.js';

/** Every error reachable from `err` through `cause` and `AggregateError.errors`, outermost first. */
export function errorChain(err: unknown): unknown[] {
  const seen = new Set<unknown>();
  const out: unknown[] = [];
  const visit = (e: unknown): void => {
    if (e === undefined || e === null || seen.has(e) || out.length > 64) return;
    seen.add(e);
    out.push(e);
    if (e instanceof AggregateError) for (const inner of e.errors) visit(inner);
    if (typeof e === 'object' && 'cause' in e) visit(e.cause);
  };
  visit(err);
  return out;
}

/** The first string `code` in the error chain (a socket or undici code) that `accept` takes. */
export function errorCode(err: unknown, accept: (code: string) => boolean = () => true): string | undefined {
  for (const e of errorChain(err)) {
    if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' && accept(e.code)) return e.code;
  }
  return undefined;
}

/** `text` cut to `max` characters, marked when cut: failure text from nodes and facilitators reaches logs, 402s and receipt rows. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The contract itself answered "no": a revert, or no data (no code at the address, or no such
 * function). That is a fact about the chain, not an RPC fault.
 *
 * viem also turns a JSON-RPC `-32603 Internal error` with any message into a
 * `ContractFunctionRevertedError`, and hosted nodes answer transient faults that way. So a -32603
 * counts as a revert only when the node's own words say "revert" or it sent revert data:
 * otherwise a blip would become a payment refusal (402) instead of an unavailable chain (503),
 * and a refused ERC-1271 signature would be cached.
 */
export function isContractFailure(err: unknown): boolean {
  const chain = errorChain(err);
  if (chain.some(isInternalErrorWithoutRevert)) return false;
  return chain.some(
    (e) =>
      e instanceof ContractFunctionRevertedError ||
      e instanceof ContractFunctionZeroDataError ||
      e instanceof RawContractError ||
      e instanceof ExecutionRevertedError,
  );
}

const INTERNAL_ERROR_CODE = -32603;

function isInternalErrorWithoutRevert(e: unknown): boolean {
  if (!(e instanceof RpcRequestError) || e.code !== INTERNAL_ERROR_CODE) return false;
  const data: unknown = e.data;
  const hasRevertData = typeof data === 'string' ? data.length > 2 : data !== undefined && data !== null;
  return !hasRevertData && !/revert/i.test(e.details);
}


/** How nodes say a call ran out of the gas it was given: geth "out of gas", anvil "EVM error OutOfGas". */
const OUT_OF_GAS = /out ?of ?gas/i;

/**
 * The node ran the call and it used up the gas limit the caller set. Only meaningful for a call
 * given a limit on purpose (the ERC-1271 check): the contract needed more than it may have,
 * which is its answer, not an RPC fault, even when a node sends it as a -32603.
 */
export function isOutOfGas(err: unknown): boolean {
  return errorChain(err).some((e) => e instanceof RpcRequestError && OUT_OF_GAS.test(e.details));
}

/**
 * True only when the request provably never reached a node: the connection itself failed, and
 * nothing in the chain is a timeout (a timed-out request may have been received and acted on).
 */
export function neverReachedNode(err: unknown): boolean {
  const chain = errorChain(err);
  if (chain.some((e) => e instanceof TimeoutError)) return false;
  if (chain.some((e) => e instanceof HttpRequestError && e.status !== undefined)) return false;
  return chain.some((e) => typeof e === 'object' && e !== null && 'code' in e && NOT_SENT_ERROR_CODES.has(String(e.code)));
}

/** The node answered with a JSON-RPC error object: it processed the request and refused it. */
export function nodeRefused(err: unknown): boolean {
  return errorChain(err).some((e) => e instanceof RpcRequestError);
}

/** A node's words for "this nonce is not the next one": the sender's count was stale. */
export const NONCE_CONFLICT = /nonce too low|nonce too high|replacement transaction underpriced|nonce.*already.*used|invalid nonce/i;

/** Refusals that mean a raw transaction was judged and kept out of the pool: nonce, fees, gas, funds, sender. */
const POOL_REJECTION = new RegExp(
  `${NONCE_CONFLICT.source}|transaction underpriced|insufficient funds|intrinsic gas too low|gas limit|fee cap|max fee per gas|max priority fee|invalid sender|exceeds block gas limit`,
  'i',
);

/**
 * The node refused a raw transaction in words that prove it never entered the pool. Any other
 * JSON-RPC error to a send (`-32603 Internal error`, a provider's "request timed out") can come
 * after the node accepted and forwarded it, so it proves nothing; nor does "already known".
 */
export function sendRejected(err: unknown): boolean {
  if (!nodeRefused(err)) return false;
  const text = failureText(err);
  return POOL_REJECTION.test(text) && !/already known/i.test(text);
}

/** The revert reason (`Error(string)`) or the node's own message for the failure, if there is one. */
export function failureText(err: unknown): string {
  const chain = errorChain(err);
  for (const e of chain) {
    if (e instanceof ContractFunctionRevertedError && e.reason !== undefined) return e.reason;
  }
  for (const e of chain) {
    if (e instanceof ExecutionRevertedError || e instanceof RpcRequestError) return e.details;
  }
  const first = chain[0];
  if (first instanceof Error) return 'shortMessage' in first && typeof first.shortMessage === 'string' ? first.shortMessage : first.message;
  return String(first);
}

/**
 * The reference facilitator's mapping of a refused `transferWithAuthorization` to a reason
 * (`parseEip3009TransferError` in `@x402/evm` 2.27), applied to the revert text only: viem's full
 * messages also print the function signature (`validBefore`, `Authorization(...)`), which these
 * loose patterns would otherwise match.
 */
export function reasonForTransferFailure(text: string): ExactEvmReason {
  if (/authorization.*(expired|valid before)/i.test(text) || /AuthorizationExpired/i.test(text)) return REASON.validBefore;
  if (/authorization.*not.*valid|AuthorizationNotYetValid/i.test(text)) return REASON.validAfter;
  if (/authorization.*used|AuthorizationAlreadyUsed|AuthorizationUsedOrCanceled/i.test(text)) return REASON.nonceUsed;
  if (/transfer.*exceeds.*balance|insufficient.*balance|ERC20InsufficientBalance/i.test(text)) return REASON.insufficientBalance;
  if (/invalid.*signature|SignerMismatch|InvalidSignatureV|InvalidSignatureS/i.test(text)) return REASON.signature;
  return REASON.transactionFailed;
}
