/**
 * The longest silence allowed between two body bytes of an upstream answer. Kept apart from the
 * time to the status line (the pool's headersTimeout), because one number for both cut a paid
 * event stream at its first quiet gap longer than the upstream's timeout, after the charge.
 *
 * undici's own bodyTimeout cannot be it: it is fixed per request before the answer's content type
 * is known, and an event stream must not have one. So each chunk the body stream takes in notes
 * the time (its `push`, which undici calls once per chunk, is wrapped: a stream between the body
 * and the caller cost a write per chunk and doubled a free request's CPU), and one timer per
 * answer, re-armed lazily for what is left of the allowance, cuts a body that went quiet.
 */
import type { Readable } from 'node:stream';

/** The error an answer is cut with; its name is what the log line shows. */
export class UpstreamIdleError extends Error {
  constructor(idleMs: number) {
    super(`the upstream sent no body byte for ${idleMs} ms`);
    this.name = 'UpstreamIdleError';
  }
}

/** Destroys `body` when it takes in no chunk for `idleMs`; returns it, to be sent as it is. */
export function watchIdle<T extends Readable>(body: T, idleMs: number): T {
  let last = performance.now();
  const push = body.push.bind(body);
  body.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    last = performance.now();
    return push(chunk, encoding);
  };
  const check = (): void => {
    if (body.destroyed || body.readableEnded) return;
    const quiet = performance.now() - last;
    if (quiet >= idleMs) {
      body.destroy(new UpstreamIdleError(idleMs));
      return;
    }
    timer = setTimeout(check, idleMs - quiet);
    timer.unref();
  };
  let timer = setTimeout(check, idleMs);
  timer.unref();
  body.once('close', () => clearTimeout(timer));
  body.once('end', () => clearTimeout(timer));
  return body;
}
