/**
 * Process CPU time (user + system) from /proc/<pid>/stat, for any process: the gateway, the
 * official server, the facilitator, anvil, the harness itself; and for a process tree (the
 * PostgreSQL server and its backends). Linux only; 10 ms resolution (USER_HZ = 100), fine for
 * windows of seconds.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: Linux reports utime/stime in 1/100 s on every architecture Node supports. */
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after comm: field 3 (state) is index 0. */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is in parentheses and may contain spaces: count fields after its closing one.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

const ticksToMs = (ticks: number): number => (ticks * 1000) / TICKS_PER_SECOND;

/** CPU milliseconds the process has used so far. */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  // utime (14) and stime (15).
  return ticksToMs(Number(fields[11]) + Number(fields[12]));
}

/** Every process now: its parent and its CPU ms, its own plus its reaped children's. */
function processTable(): Map<number, { ppid: number; cpu: number }> {
  const table = new Map<number, { ppid: number; cpu: number }>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    let fields: string[];
    try {
      fields = statFields(pid);
    } catch {
      continue; // exited while the table was read
    }
    // ppid (4); utime, stime, cutime, cstime (14 to 17).
    const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    table.set(pid, { ppid: Number(fields[1]), cpu: ticksToMs(ticks) });
  }
  return table;
}

/**
 * CPU milliseconds used so far by a process and all its descendants, those that exited too: a
 * server that forks a process per connection (PostgreSQL) loses backends while a window runs, and
 * their time is then in the parent's cutime/cstime (counted once its parent reaped them, which a
 * postmaster does at once). Summing own + reaped over the live tree counts each process once.
 */
export function treeCpuMs(root: number): number {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of table) {
    const siblings = children.get(ppid);
    if (siblings === undefined) children.set(ppid, [pid]);
    else siblings.push(pid);
  }
  let total = 0;
  const pending = [root];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    total += table.get(pid)?.cpu ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** The first child of `parent` whose command line (argv) `matches`, if any. */
export function findChildPid(parent: number, matches: (argv: readonly string[]) => boolean): number | undefined {
  for (const [pid, { ppid }] of processTable()) {
    if (ppid !== parent) continue;
    try {
      if (matches(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
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
