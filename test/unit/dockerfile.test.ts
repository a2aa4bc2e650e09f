/**
 * Keeps the Dockerfile's properties that drift silently: the install layer cached across code
 * changes (package*.json and `npm ci` before src/), Node 24 in every stage, a HEALTHCHECK that
 * asks the gateway's own `healthcheck` command, the OCI labels, a non-root user, and a runtime
 * stage without src/, the dev tools or devDependencies. A plain read of the file, no build
 * (the image itself was built and run with podman; see the README's Docker section).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const DOCKERFILE = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  license: string;
};
const NODE_BASE = /^node:24(\.\d+){0,2}-bookworm-slim(@sha256:[0-9a-f]{64})?$/;
const MAIN = '/app/dist/src/main.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** Stages in order; continuation lines joined, comments and blank lines dropped. */
function parseStages(text: string): Stage[] {
  const stages: { from: string; name: string | undefined; instructions: Instruction[] }[] = [];
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') };
    if (instruction.op === 'FROM') {
      const [from = '', as, name] = instruction.args.split(' ');
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (instruction.op !== 'ARG' || stages.length > 0) {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile: ${instruction.op} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

const stages = parseStages(DOCKERFILE);
const final = stages.at(-1) as Stage;
const byName = (name: string): Stage | undefined => stages.find((s) => s.name === name);

/** A stage's instructions preceded by those of the stages it is built FROM, in build order. */
function lineage(stage: Stage): Instruction[] {
  const parent = byName(stage.from);
  return [...(parent ? lineage(parent) : []), ...stage.instructions];
}
const find = (list: readonly Instruction[], op: string, test: RegExp): number =>
  list.findIndex((i) => i.op === op && test.test(i.args));
const all = (stage: Stage, op: string): Instruction[] => stage.instructions.filter((i) => i.op === op);
const lastArgs = (stage: Stage, op: string): string | undefined => all(stage, op).at(-1)?.args;
const execForm = (args: string | undefined): unknown => (args === undefined ? undefined : JSON.parse(args));
/** A COPY's or ADD's sources: its words less the --flags and the destination, `./` prefixes dropped. */
const sources = (copy: Instruction): string[] =>
  copy.args.split(' ').filter((w) => !w.startsWith('--')).slice(0, -1).map((w) => w.replace(/^\.\/(?=.)/, '').replace(/\/$/, ''));
const copiesSrc = (i: Instruction): boolean => i.op === 'COPY' && sources(i).includes('src');

describe('Dockerfile', () => {
  it('builds every stage on Node 24 (bookworm-slim), or on an earlier stage of its own', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const [index, stage] of stages.entries()) {
      const earlier = stages.slice(0, index).some((s) => s.name === stage.from);
      expect(earlier || NODE_BASE.test(stage.from), `FROM ${stage.from}`).toBe(true);
    }
  });

  it('copies package.json and package-lock.json and runs npm ci before it copies src/, so a code change keeps the install cached', () => {
    const compiling = stages.filter((s) => s.instructions.some(copiesSrc));
    expect(compiling.length).toBe(1);
    const steps = lineage(compiling[0] as Stage);
    const manifests = find(steps, 'COPY', /\bpackage\.json\b.*\bpackage-lock\.json\b/);
    const install = find(steps, 'RUN', /\bnpm ci\b/);
    const source = steps.findIndex(copiesSrc);
    expect(manifests).toBeGreaterThanOrEqual(0);
    expect(install).toBeGreaterThan(manifests);
    expect(source).toBeGreaterThan(install);
    // Nothing broader than the manifests reaches the install layer (a `COPY . .` would undo it).
    const beforeInstall = steps.slice(0, install).filter((i) => i.op === 'COPY' || i.op === 'ADD');
    for (const copy of beforeInstall) expect(sources(copy), copy.args).not.toContain('.');
    // `prepare` compiles src/, which the install layer must not see: its scripts are skipped.
    expect(steps[install]?.args).toMatch(/--ignore-scripts/);
    expect(steps.slice(install).some((i) => i.op === 'RUN' && /npm rebuild better-sqlite3/.test(i.args))).toBe(true);
  });

  it("checks health with the gateway's own healthcheck command (it follows the config's admin port)", () => {
    const healthcheck = lastArgs(final, 'HEALTHCHECK') ?? '';
    const cmd = /\bCMD (\[.*\])$/.exec(healthcheck)?.[1];
    expect(execForm(cmd)).toEqual(['node', MAIN, 'healthcheck']);
    expect(execForm(lastArgs(final, 'ENTRYPOINT'))).toEqual(['node', MAIN]);
    expect(healthcheck).not.toMatch(/\b9402\b|127\.0\.0\.1|localhost/);
  });

  it('reads the config the CMD starts with when a command is given no --config, and stops with SIGTERM', () => {
    const cmd = execForm(lastArgs(final, 'CMD')) as string[];
    const config = cmd[cmd.indexOf('--config') + 1];
    expect(all(final, 'ENV').map((i) => i.args)).toContain(`X402_GATEWAY_CONFIG=${config}`);
    expect(lastArgs(final, 'STOPSIGNAL')).toBe('SIGTERM');
  });

  it("carries the OCI labels, its version defaulting to package.json's", () => {
    const labels = all(final, 'LABEL').map((i) => i.args).join(' ');
    for (const key of ['title', 'description', 'source', 'licenses', 'version']) {
      expect(labels).toMatch(new RegExp(`org\\.opencontainers\\.image\\.${key}=`));
    }
    expect(labels).toContain(`org.opencontainers.image.licenses="${PACKAGE.license}"`);
    expect(labels).toContain('org.opencontainers.image.version="${VERSION}"');
    expect(all(final, 'ARG').map((i) => i.args)).toContain(`VERSION=${PACKAGE.version}`);
  });

  it('runs as a non-root user', () => {
    const user = lastArgs(final, 'USER');
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const userAt = final.instructions.findIndex((i) => i.op === 'USER');
    expect(userAt).toBeLessThan(final.instructions.findIndex((i) => i.op === 'ENTRYPOINT'));
  });

  it('ships no src/, no dev tools and no devDependencies in the runtime stage', () => {
    const copies = all(final, 'COPY');
    for (const copy of copies) {
      for (const from of sources(copy)) expect(['.', 'src', 'test', 'bench', 'dist/src/tools']).not.toContain(from);
    }
    expect(find(final.instructions, 'RUN', /\bnpm (ci|install)\b/)).toBe(-1);
    // node_modules comes from a stage that pruned the devDependencies (and TypeScript with them).
    const modules = copies.find((c) => /node_modules/.test(c.args));
    const from = /--from=(\S+)/.exec(modules?.args ?? '')?.[1] ?? '';
    const source = byName(from);
    expect(source, `COPY --from=${from} of node_modules`).toBeDefined();
    expect(lineage(source as Stage).some((i) => i.op === 'RUN' && /--omit=dev\b/.test(i.args) && /--omit=optional\b/.test(i.args))).toBe(true);
    // dist/src comes from a stage that deleted dist/src/tools after compiling.
    const dist = copies.find((c) => /dist\/src/.test(c.args));
    const built = byName(/--from=(\S+)/.exec(dist?.args ?? '')?.[1] ?? '');
    expect(built).toBeDefined();
    const steps = lineage(built as Stage);
    const compile = find(steps, 'RUN', /npm run build/);
    expect(compile).toBeGreaterThanOrEqual(0);
    const after = steps.slice(compile).map((i) => (i.op === 'RUN' ? i.args : '')).join(' && ');
    expect(after).toMatch(/npm run build.*rm -rf dist\/src\/tools( |$)/);
  });
});
