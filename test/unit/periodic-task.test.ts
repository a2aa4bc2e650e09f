import { describe, expect, it } from 'vitest';
import { PeriodicTask } from '../../src/payments/periodic-task.js';

describe('PeriodicTask', () => {
  it('runs one pass at a time: a pass asked for while one runs joins it', async () => {
    let runs = 0;
    let finish: () => void = () => {};
    const task = new PeriodicTask(
      () => {
        runs++;
        return new Promise<void>((resolve) => (finish = resolve));
      },
      60_000,
      () => {},
    );
    const first = task.pass();
    const second = task.pass();
    expect(second).toBe(first);
    finish();
    await first;
    expect(runs).toBe(1);
    const third = task.pass();
    finish();
    await third;
    expect(runs).toBe(2);
  });

  it('hands a failed pass to onError, never rejects, and tries again at the next one', async () => {
    const errors: unknown[] = [];
    let fail = true;
    let done = 0;
    const task = new PeriodicTask(
      async () => {
        if (fail) throw new Error('rpc down');
        done++;
      },
      60_000,
      (err) => errors.push(err),
    );
    await expect(task.pass()).resolves.toBeUndefined();
    expect(errors).toEqual([new Error('rpc down')]);
    fail = false;
    await task.pass();
    expect(done).toBe(1);
  });

  it('with now, passes at once and then every interval; stop waits for the pass in progress and ends them', async () => {
    let runs = 0;
    const task = new PeriodicTask(
      async () => {
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      },
      20,
      () => {},
    );
    task.start({ now: true });
    expect(runs).toBe(1);
    while (runs < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    await task.stop();
    const stopped = runs;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(runs).toBe(stopped);
  });
});
