/**
 * One measured window of load with autocannon: N concurrent keep-alive connections, each sending
 * its next request as soon as the previous answer arrived (a closed loop, like N callers).
 * Latencies are collected from every response (autocannon's own histogram keeps whole
 * milliseconds), and every status is counted so a window that failed is not mistaken for a fast one.
 */
import autocannon from 'autocannon';
import { quantile } from './stats.js';

/** One request: a path and, for paid requests, the payment header it carries. */
export interface PlannedRequest {
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface LoadOptions {
  /** Base URL of the server under test. */
  readonly url: string;
  readonly connections: number;
  /** Either a fixed duration... */
  readonly durationSeconds?: number;
  /** ...or a fixed number of requests (paid windows: one pre-signed payment each). */
  readonly amount?: number;
  /** The request to send next; called once per request. Default: GET `path`. */
  readonly next?: () => PlannedRequest;
  readonly path?: string;
  /** Ends the window early (what was measured so far is returned). */
  readonly signal?: AbortSignal;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly statuses: Readonly<Record<number, number>>;
  /** Connection errors and timeouts. */
  readonly errors: number;
}

/** Runs one window; connection errors and timeouts are counted in the result, not thrown. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const next = options.next;
  const started = performance.now();
  let lastResponse = started;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        ...(options.amount === undefined ? { duration: options.durationSeconds ?? 5 } : { amount: options.amount }),
        timeout: 30,
        requests: [
          next === undefined
            ? { path: options.path ?? '/' }
            : {
                setupRequest: (request) => {
                  const planned = next();
                  return { ...request, path: planned.path, headers: { ...request.headers, ...planned.headers } };
                },
              },
        ],
      },
      (err, done) => (err === null || err === undefined ? resolve(done) : reject(err instanceof Error ? err : new Error(String(err)))),
    );
    options.signal?.addEventListener('abort', () => instance.stop(), { once: true });
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      lastResponse = performance.now();
      latencies.push(responseTime);
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
    });
  });
  // Up to the last answer: autocannon notices that `amount` is reached only on its next
  // one-second tick, so its own duration is rounded up to whole seconds.
  const seconds = (lastResponse - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    statuses,
    errors: result.errors,
  };
}

/** The share of answers with this status; a window is only trusted when nearly all are as expected. */
export function share(result: LoadResult, status: number): number {
  return result.requests === 0 ? 0 : (result.statuses[status] ?? 0) / result.requests;
}
