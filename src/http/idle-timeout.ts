/**
 * The longest silence allowed between two body bytes of an upstream answer. Kept apart from the
 * time to the status line (the pool's headersTimeout), because one number for both cut a paid
 * event stream at its first quiet gap longer than the upstream's timeout, after the charge.
 *
 * One timer per answer, re-armed lazily: each chunk only notes the time, and the timer, when it
 * fires, re-arms itself for what is left of the allowance since the last chunk. So a busy stream
 * costs no timer churn.
 */
import { pipeline, Transform, type Readable } from 'node:stream';

/** The error an answer is cut with; its name is what the log line shows. */
export class UpstreamIdleError extends Error {
  constructor(idleMs: number) {
    super(`the upstream sent no body byte for ${idleMs} ms`);
    this.name = 'UpstreamIdleError';
  }
}

/** `source` passed through, destroyed when it is silent for `idleMs`. */
export function watchIdle(source: NodeJS.ReadableStream & { destroy(error?: Error): void }, idleMs: number): Readable {
  let last = performance.now();
  const out = new Transform({
    transform(chunk, _encoding, callback) {
      last = performance.now();
      callback(null, chunk);
    },
  });
  const check = (): void => {
    const quiet = performance.now() - last;
    if (quiet >= idleMs) {
      source.destroy(new UpstreamIdleError(idleMs));
      return;
    }
    timer = setTimeout(check, idleMs - quiet);
    timer.unref();
  };
  let timer = setTimeout(check, idleMs);
  timer.unref();
  pipeline(source as Readable, out, () => clearTimeout(timer));
  return out;
}
