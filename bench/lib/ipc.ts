/**
 * The messages between the harness and the servers it runs as child processes. Each server under
 * test runs in its own process so that its CPU time (read from /proc) and memory are its own.
 */

/** Child → harness: listening, at `url`. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly url: string;
}

/** Child → harness: the answer to a `memory` request. */
export interface MemoryMessage {
  readonly type: 'memory';
  readonly rss: number;
  readonly heapUsed: number;
  /** Memory outside the V8 heap that JavaScript objects hold (Buffers and the like). */
  readonly external: number;
}

/** Harness → child. `stop` closes the server and exits (a CPU profile, if any, is written then). */
export type ParentMessage = { readonly type: 'stop' } | { readonly type: 'memory' };
export type ChildMessage = ReadyMessage | MemoryMessage;

/** The environment variable that carries a child's parameters, as JSON. */
export const PARAMS_ENV = 'BENCH_PARAMS';

export function isChildMessage(value: unknown): value is ChildMessage {
  if (typeof value !== 'object' || value === null || !('type' in value)) return false;
  return value.type === 'ready' || value.type === 'memory';
}

export function isParentMessage(value: unknown): value is ParentMessage {
  if (typeof value !== 'object' || value === null || !('type' in value)) return false;
  return value.type === 'stop' || value.type === 'memory';
}
