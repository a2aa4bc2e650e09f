/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --profile`): where the
 * process spent its time, by package or source directory and by function, self and inclusive.
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [top=25] [skip-ms=0]
 *
 * `skip-ms` leaves out the first milliseconds of the profile (start-up: module loading and
 * compilation), so that what remains is the steady state under load.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function isProfile(value: unknown): value is Profile {
  return typeof value === 'object' && value !== null && 'nodes' in value && 'samples' in value && 'timeDeltas' in value;
}

/** `viem`, `@fastify/reply-from`, `src/payments`, `(node) internal`, `(program)`, ... */
export function owner(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? url);
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] ?? ''}`;
  // Our own code, compiled by the harness (bench/out/build/src/...) or run from source.
  const src = /^\/(src|bench|test)\/(?:([^/]+)\/)?/.exec(sourcePath(url));
  if (src) return src[2] === undefined ? src[1] ?? url : `${src[1]}/${src[2]}`;
  return url;
}

/** The file's path from the repository root when it is ours, else the URL unchanged. */
function sourcePath(url: string): string {
  const built = url.indexOf('/out/build/');
  const path = built >= 0 ? `/${url.slice(built + '/out/build/'.length)}` : url;
  const mine = /\/((?:src|bench|test)\/.*)$/.exec(path);
  return mine?.[1] !== undefined ? `/${mine[1]}` : path;
}

/** `file.ts:line` for our code, the package for a dependency. */
function where(url: string, functionName: string, line: number): string {
  const path = sourcePath(url);
  const ours = /^\/(src|bench|test)\//.test(path);
  return `${ours ? path.slice(1) : owner(url, functionName)}:${line}`;
}

export function summarise(profile: Profile, top: number, skipMs = 0): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let total = 0;
  let elapsedUs = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    elapsedUs += dt;
    if (elapsedUs < skipMs * 1000) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  });
  const label = (n: ProfileNode): string =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url, n.callFrame.functionName, n.callFrame.lineNumber + 1)}`;

  const selfByOwner = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclByFn = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const o = owner(n.callFrame.url, n.callFrame.functionName);
    selfByOwner.set(o, (selfByOwner.get(o) ?? 0) + us);
    selfByFn.set(label(n), (selfByFn.get(label(n)) ?? 0) + us);
    // Inclusive: charge every distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (!node) break;
      const l = label(node);
      if (seen.has(l)) continue;
      seen.add(l);
      inclByFn.set(l, (inclByFn.get(l) ?? 0) + us);
    }
  }
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const table = (title: string, m: Map<string, number>): string =>
    [
      `\n${title}`,
      ...[...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([k, us]) => `${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`),
    ].join('\n');
  return [
    `total sampled: ${(total / 1000).toFixed(0)} ms`,
    table('self time by package / source directory', selfByOwner),
    table('self time by function', selfByFn),
    table('inclusive time by function', inclByFn),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '')) {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top] [skip-ms]');
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (!isProfile(parsed)) throw new Error(`${file} is not a V8 CPU profile`);
  console.log(summarise(parsed, Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0)));
}
