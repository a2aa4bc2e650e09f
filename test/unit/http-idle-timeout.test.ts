import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { IdleWatch, UpstreamIdleError } from '../../src/http/idle-timeout.js';

/** A source that pushes `chunks` at the given delays (ms after the previous one), then ends. */
function timedSource(steps: readonly (readonly [number, string])[]): Readable {
  const source = new Readable({ read() {} });
  let at = 0;
  for (const [delay, chunk] of steps) {
    at += delay;
    setTimeout(() => source.destroyed || source.push(chunk), at);
  }
  setTimeout(() => source.destroyed || source.push(null), at + 5);
  return source;
}

/** A caller that reads everything; `delivered` counts what it has read, as a socket's bytesWritten would. */
function caller(): { delivered: () => number; collect: (stream: Readable) => Promise<{ text: string; error?: unknown }> } {
  let bytes = 0;
  return {
    delivered: () => bytes,
    async collect(stream) {
      let text = '';
      try {
        for await (const chunk of stream) {
          bytes += String(chunk).length;
          text += String(chunk);
        }
        return { text };
      } catch (error) {
        return { text, error };
      }
    },
  };
}

describe('IdleWatch', () => {
  it('passes a stream whose gaps stay under the limit, however long it lasts in all', async () => {
    const reader = caller();
    const source = timedSource([[0, 'a'], [60, 'b'], [60, 'c'], [60, 'd']]);
    expect(await reader.collect(new IdleWatch(100).watch(source, reader.delivered))).toEqual({ text: 'abcd' });
  });

  it('cuts a stream at the first gap longer than the limit, with UpstreamIdleError', async () => {
    const reader = caller();
    const source = timedSource([[0, 'a'], [40, 'b'], [250, 'late']]);
    const result = await reader.collect(new IdleWatch(100).watch(source, reader.delivered));
    expect(result.text).toBe('ab');
    expect(source.destroyed).toBe(true);
    expect(result.error).toBeInstanceOf(UpstreamIdleError);
  });

  it('does not cut a body that waits for a slow caller: its buffer is full, the upstream is paused', async () => {
    const reader = caller();
    // undici's body has a 64 KiB highWaterMark on every node; a plain Readable's default is
    // 16 KiB on Node 20 and 64 KiB from Node 22, so it is set here: 32 KiB must overfill it.
    const source = new Readable({ read() {}, highWaterMark: 16 * 1024 });
    const watched = new IdleWatch(100).watch(source, reader.delivered);
    source.push(Buffer.alloc(32 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 300));
    source.push(null);
    expect(await reader.collect(watched)).toEqual({ text: String(Buffer.alloc(32 * 1024)) });
  });

  it('watches many answers with one limit, cutting only the quiet one', async () => {
    const watch = new IdleWatch(100);
    const [busyReader, quietReader] = [caller(), caller()];
    const busy = watch.watch(timedSource([[0, 'a'], [60, 'b'], [60, 'c'], [60, 'd']]), busyReader.delivered);
    const quiet = watch.watch(timedSource([[0, 'x'], [250, 'late']]), quietReader.delivered);
    const [busyResult, quietResult] = await Promise.all([busyReader.collect(busy), quietReader.collect(quiet)]);
    expect(busyResult).toEqual({ text: 'abcd' });
    expect(quietResult.text).toBe('x');
    expect(quietResult.error).toBeInstanceOf(UpstreamIdleError);
  });
});
