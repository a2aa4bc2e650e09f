/**
 * The longest silence allowed between two body bytes of an upstream answer. Kept apart from the
 * time to the status line (the pool's headersTimeout), because one number for both cut a paid
 * event stream at its first quiet gap longer than the upstream's timeout, after the charge.
 *
 * undici's own bodyTimeout cannot be it: it is fixed per request before the answer's content type
 * is known, and an event stream must not have one. Nor a stream between the body and the caller:
 * it cost a write per chunk and doubled a free request's CPU. So one sweep per limit looks at
 * every watched answer and cuts the ones that made no progress for that long.
 */
import type { Readable } from 'node:stream';

/** The error an answer is cut with; its name is what the log line shows. */
export class UpstreamIdleError extends Error {
  constructor(idleMs: number) {
    super(`the upstream sent no body byte for ${idleMs} ms`);
    this.name = 'UpstreamIdleError';
  }
}

interface Watched {
  readonly body: Readable;
  readonly delivered: () => number;
  /** What `delivered()` and the body's buffer held at the last sweep that saw progress. */
  lastDelivered: number;
  lastBuffered: number;
  /** performance.now() of that sweep. */
  lastProgress: number;
}

/**
 * Watches answers for one limit. Progress is what reached the caller (the bytes its socket took)
 * or the body's buffer filling; a body whose buffer is full waits for its caller to read, not for
 * the upstream (undici pauses the socket), and is not quiet either. A body without progress for
 * `idleMs` is destroyed with UpstreamIdleError at a sweep, so within `idleMs` and a quarter. The
 * sweep runs only while some answer is watched, on an unref'd timer.
 *
 * Nothing on the body is changed: wrapping its `push` to note each chunk made every young-
 * generation collection several times slower (the bench's free route: GC 4x, CPU per request a
 * third higher), and one timer per answer cost as much.
 */
export class IdleWatch {
  readonly #idleMs: number;
  readonly #sweepMs: number;
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | undefined;

  constructor(idleMs: number) {
    this.#idleMs = idleMs;
    this.#sweepMs = Math.min(1000, Math.max(10, Math.floor(idleMs / 4)));
  }

  /**
   * Watches `body` until it closes; `delivered` counts the bytes that have left towards the
   * caller so far (any count that grows as the body is sent). Returns the body, to be sent as it is.
   */
  watch<T extends Readable>(body: T, delivered: () => number): T {
    const watched: Watched = { body, delivered, lastDelivered: delivered(), lastBuffered: 0, lastProgress: performance.now() };
    this.#watched.add(watched);
    // Let go of a finished body at once: kept until the next sweep, a second's worth of finished
    // answers survived into the old generation, at a cost like the one above.
    body.once('close', () => this.#watched.delete(watched));
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), this.#sweepMs);
      this.#timer.unref();
    }
    return body;
  }

  #sweep(): void {
    const now = performance.now();
    for (const watched of this.#watched) {
      const body = watched.body;
      const delivered = watched.delivered();
      const buffered = body.readableLength;
      if (body.destroyed) {
        this.#watched.delete(watched);
      } else if (delivered !== watched.lastDelivered || buffered !== watched.lastBuffered || buffered >= body.readableHighWaterMark) {
        watched.lastDelivered = delivered;
        watched.lastBuffered = buffered;
        watched.lastProgress = now;
      } else if (now - watched.lastProgress >= this.#idleMs) {
        this.#watched.delete(watched);
        body.destroy(new UpstreamIdleError(this.#idleMs));
      }
    }
    if (this.#watched.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
