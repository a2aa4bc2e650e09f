/**
 * The child half of the harness protocol: start a server, say where it listens, answer memory
 * questions, close and exit when told (or when the harness goes away).
 */
import { isParentMessage, PARAMS_ENV, type ChildMessage } from '../lib/ipc.js';

export interface ChildServer {
  readonly url: string;
  close(): Promise<void>;
}

/** This child's parameters (set by the harness). */
export function childParams(): Record<string, unknown> {
  const text = process.env[PARAMS_ENV];
  if (text === undefined) throw new Error(`${PARAMS_ENV} is not set: run this file through bench/run.ts`);
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${PARAMS_ENV} is not a JSON object`);
  return { ...parsed };
}

/** A string parameter that must be present. */
export function stringParam(params: Record<string, unknown>, name: string): string {
  const value = params[name];
  if (typeof value !== 'string') throw new Error(`parameter ${name} missing`);
  return value;
}

export async function serveChild(start: () => Promise<ChildServer>): Promise<void> {
  const send = (message: ChildMessage): void => {
    process.send?.(message);
  };
  const server = await start();
  let closing = false;
  const stop = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    await server.close().catch(() => {});
    // A normal exit, so that --cpu-prof writes its profile.
    process.exit(0);
  };
  process.on('message', (message: unknown) => {
    if (!isParentMessage(message)) return;
    switch (message.type) {
      case 'stop':
        void stop();
        break;
      case 'memory': {
        // With --expose-gc (the harness starts the gateway so), measure what survives a full
        // collection: otherwise a sample lands anywhere in the sawtooth of garbage between GCs.
        const gc: unknown = Reflect.get(globalThis, 'gc');
        if (typeof gc === 'function') {
          gc();
          gc();
        }
        const { rss, heapUsed, external } = process.memoryUsage();
        send({ type: 'memory', rss, heapUsed, external });
        break;
      }
    }
  });
  process.on('disconnect', () => void stop());
  send({ type: 'ready', url: server.url });
}
