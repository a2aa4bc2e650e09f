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
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return runLoads([options]);
}

/**
 * Runs several loads at once as one window, e.g. callers split between two gateways: they start
 * together, and the result is of every response of all of them (latencies, statuses, and
 * throughput up to the last answer of any).
 */
export async function runLoads(parts: readonly LoadOptions[]): Promise<LoadResult> {
  const collected: Collected = { latencies: [], statuses: {}, lastResponse: 0 };
  const started = performance.now();
  collected.lastResponse = started;
  const results = await Promise.all(parts.map((part) => drive(part, collected)));
  // Up to the last answer: autocannon notices that `amount` is reached only on its next
  // one-second tick, so its own duration is rounded up to whole seconds.
  const seconds = (collected.lastResponse - started) / 1000;
  const latencies = collected.latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    statuses: collected.statuses,
    errors: results.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** Every response of a window, as the autocannon instances driving it see them. */
interface Collected {
  readonly latencies: number[];
  readonly statuses: Record<number, number>;
  lastResponse: number;
}

/** One autocannon instance, its responses recorded into `into`. */
function drive(options: LoadOptions, into: Collected): Promise<autocannon.Result> {
  const next = options.next;
  return new Promise<autocannon.Result>((resolve, reject) => {
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
      into.lastResponse = performance.now();
      into.latencies.push(responseTime);
      into.statuses[statusCode] = (into.statuses[statusCode] ?? 0) + 1;
    });
  });
}

/** The share of answers with this status; a window is only trusted when nearly all are as expected. */
export function share(result: LoadResult, status: number): number {
  return result.requests === 0 ? 0 : (result.statuses[status] ?? 0) / result.requests;
}
