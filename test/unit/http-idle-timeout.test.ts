import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UpstreamIdleError, watchIdle } from '../../src/http/idle-timeout.js';

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

async function collect(stream: Readable): Promise<{ text: string; error?: unknown }> {
  let text = '';
  try {
    for await (const chunk of stream) text += String(chunk);
    return { text };
  } catch (error) {
    return { text, error };
  }
}

describe('watchIdle', () => {
  it('passes a stream whose gaps stay under the limit, however long it lasts in all', async () => {
    const source = timedSource([[0, 'a'], [60, 'b'], [60, 'c'], [60, 'd']]);
    expect(await collect(watchIdle(source, 100))).toEqual({ text: 'abcd' });
  });

  it('cuts a stream at the first gap longer than the limit, with UpstreamIdleError', async () => {
    const source = timedSource([[0, 'a'], [40, 'b'], [250, 'late']]);
    const result = await collect(watchIdle(source, 100));
    expect(result.text).toBe('ab');
    expect(source.destroyed).toBe(true);
    expect(result.error).toBeInstanceOf(UpstreamIdleError);
  });
});
