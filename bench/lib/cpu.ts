/**
 * Process CPU time (user + system) from /proc/<pid>/stat, for any process: the gateway, the
 * official server, the facilitator, anvil, the harness itself. Linux only; 10 ms resolution
 * (USER_HZ = 100), fine for windows of seconds.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: Linux reports utime/stime in 1/100 s on every architecture Node supports. */
const TICKS_PER_SECOND = 100;

/** CPU milliseconds the process has used so far. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After comm, field 3 (state) is index 0, so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** A named set of processes whose CPU time is read together at the start and end of a window. */
export type Pids = Readonly<Record<string, number>>;

export function cpuSnapshot(pids: Pids): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = cpuMs(pid);
  return out;
}

/** CPU ms each process spent between two snapshots. */
export function cpuDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of Object.entries(after)) out[name] = end - (before[name] ?? end);
  return out;
}
