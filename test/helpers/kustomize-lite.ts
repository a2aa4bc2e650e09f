/**
 * `kustomize build` for the manifest test, without the binary: reads a kustomization.yaml, loads
 * its `resources` (files, and directories holding a kustomization.yaml, recursively), generates
 * its `configMapGenerator` ConfigMaps, then applies its `patches` as strategic-merge patches,
 * each to the resource of the same kind and name.
 *
 * Only what deploy/kubernetes/ and config/ use is implemented, and everything else is refused
 * rather than ignored: a field this does not know, a JSON 6902 patch, a patch directive (`$patch`,
 * `$retainKeys`, ...), a merge of two lists whose merge key is not in MERGE_KEYS, or a generated
 * name with kustomize's content-hash suffix (`generatorOptions.disableNameSuffixHash: true` is
 * required; the suffix and the rewriting of references to it are not implemented). So a
 * kustomization that builds here builds the same way in kustomize; one that uses more fails here
 * until this learns it. Like kustomize's default load restrictor, a generator's file must be in or
 * below the kustomization's directory (symlinks resolved).
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type Mapping = Record<string, unknown>;

export interface Manifest {
  /** The file it came from. */
  readonly file: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly body: Mapping;
}

export interface Build {
  readonly manifests: Manifest[];
  /** Every file read: kustomization.yaml files, resources and patches. */
  readonly files: ReadonlySet<string>;
}

const KUSTOMIZATION = 'kustomization.yaml';
const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'configMapGenerator', 'generatorOptions', 'patches']);

/**
 * Merge keys of the lists a patch may merge into, by path within a pod template's owner (the
 * Kubernetes API's `patchMergeKey`s). A list elsewhere replaces the original's only where the
 * original has none.
 */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  'spec.template.spec.containers': 'name',
  'spec.template.spec.initContainers': 'name',
  'spec.template.spec.volumes': 'name',
  'spec.template.spec.containers[].env': 'name',
  'spec.template.spec.containers[].ports': 'containerPort',
  'spec.template.spec.containers[].volumeMounts': 'mountPath',
};
/**
 * Lists the Kubernetes API gives no merge strategy: a patch's list replaces the original's, as in
 * kustomize (`args: [start, --config, other.yaml]` in an overlay).
 */
const REPLACED_LISTS = new Set(['spec.template.spec.containers[].args', 'spec.template.spec.containers[].command']);
/** `retainKeys` fields: kustomize drops the original's keys the patch omits. Not implemented. */
const RETAIN_KEYS = new Set(['spec.strategy', 'spec.template.spec.volumes[]']);

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${where}: expected a non-empty string`);
  return value;
}

/** The YAML documents of a file, as manifests (empty documents skipped). */
export function readManifests(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true });
  if (!Array.isArray(docs)) return [];
  return docs.flatMap((doc, i) => {
    const where = `${file}#${i}`;
    if (doc.errors.length > 0) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const body: unknown = doc.toJS();
    if (body === null || body === undefined) return [];
    if (!isMapping(body)) throw new Error(`${where}: not a mapping`);
    const metadata = isMapping(body['metadata']) ? body['metadata'] : {};
    return [{ file, apiVersion: text(body['apiVersion'], `${where}.apiVersion`), kind: text(body['kind'], `${where}.kind`), name: text(metadata['name'], `${where}.metadata.name`), body }];
  });
}

function id(m: Pick<Manifest, 'apiVersion' | 'kind' | 'name'>): string {
  return `${m.apiVersion} ${m.kind} ${m.name}`;
}

/** The resources `kustomize build dir` would print, in resource order. */
export function kustomizeBuild(dir: string): Build {
  const files = new Set<string>();
  const manifests = build(resolve(dir), files, []);
  return { manifests, files };
}

function build(dir: string, files: Set<string>, stack: string[]): Manifest[] {
  if (stack.includes(dir)) throw new Error(`kustomization cycle: ${[...stack, dir].join(' -> ')}`);
  const path = join(dir, KUSTOMIZATION);
  if (!existsSync(path)) throw new Error(`${dir}: no ${KUSTOMIZATION}`);
  files.add(path);
  const [doc, ...more] = readKustomization(path);
  if (doc === undefined || more.length > 0) throw new Error(`${path}: expected one document`);
  if (doc['apiVersion'] !== 'kustomize.config.k8s.io/v1beta1' || doc['kind'] !== 'Kustomization') {
    throw new Error(`${path}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization`);
  }
  for (const key of Object.keys(doc)) if (!KUSTOMIZATION_FIELDS.has(key)) throw new Error(`${path}: kustomize-lite does not implement ${key}`);

  const resources: Manifest[] = [];
  for (const entry of stringList(doc['resources'] ?? [], `${path} resources`)) {
    const target = resolve(dir, entry);
    if (!existsSync(target)) throw new Error(`${path}: resource ${entry} does not exist`);
    const loaded = statSync(target).isDirectory() ? build(target, files, [...stack, dir]) : (files.add(target), readManifests(target));
    for (const m of loaded) {
      if (resources.some((r) => id(r) === id(m))) throw new Error(`${path}: ${id(m)} is defined twice (${relative(dir, m.file)})`);
      resources.push(m);
    }
  }

  for (const m of generateConfigMaps(dir, doc, path, files)) {
    if (resources.some((r) => id(r) === id(m))) throw new Error(`${path}: ${id(m)} is defined twice (configMapGenerator)`);
    resources.push(m);
  }

  for (const [i, raw] of list(doc['patches'] ?? [], `${path} patches`).entries()) {
    const where = `${path} patches[${i}]`;
    if (!isMapping(raw) || Object.keys(raw).some((k) => k !== 'path') || typeof raw['path'] !== 'string') {
      throw new Error(`${where}: kustomize-lite implements only { path: <strategic-merge patch file> }`);
    }
    const file = resolve(dir, raw['path']);
    files.add(file);
    const patches = readManifests(file);
    if (patches.length !== 1) throw new Error(`${where}: expected one patch document in ${raw['path']}`);
    const patch = patches[0] as Manifest;
    const at = resources.findIndex((r) => id(r) === id(patch));
    if (at < 0) throw new Error(`${where}: no resource ${id(patch)} to patch`);
    const original = resources[at] as Manifest;
    resources[at] = { ...original, body: merge(original.body, patch.body, '', `${relative(dirname(path), file)}`) as Mapping };
  }
  return resources;
}

/**
 * `configMapGenerator` entries of `{ name, files }`, each file `path` or `key=path` (the key
 * defaults to the file's name), with `generatorOptions` of `disableNameSuffixHash: true` and
 * optional `labels`. Data keys sorted, as kustomize prints them.
 */
function generateConfigMaps(dir: string, doc: Mapping, path: string, files: Set<string>): Manifest[] {
  const generators = list(doc['configMapGenerator'] ?? [], `${path} configMapGenerator`);
  if (generators.length === 0) return [];
  const options = doc['generatorOptions'] ?? {};
  if (!isMapping(options)) throw new Error(`${path} generatorOptions: expected a mapping`);
  for (const key of Object.keys(options)) {
    if (key !== 'disableNameSuffixHash' && key !== 'labels') throw new Error(`${path}: kustomize-lite does not implement generatorOptions.${key}`);
  }
  if (options['disableNameSuffixHash'] !== true) {
    throw new Error(`${path}: kustomize-lite does not implement the content-hash name suffix; set generatorOptions.disableNameSuffixHash: true`);
  }
  const labels = options['labels'] === undefined ? undefined : mapping(options['labels'], `${path} generatorOptions.labels`);
  const root = realpathSync(dir);
  return generators.map((raw, i) => {
    const where = `${path} configMapGenerator[${i}]`;
    if (!isMapping(raw) || Object.keys(raw).some((k) => k !== 'name' && k !== 'files')) {
      throw new Error(`${where}: kustomize-lite implements only { name, files }`);
    }
    const data: Record<string, string> = {};
    for (const [j, entry] of stringList(raw['files'], `${where}.files`).entries()) {
      const eq = entry.indexOf('=');
      const key = eq < 0 ? basename(entry) : entry.slice(0, eq);
      const file = resolve(dir, eq < 0 ? entry : entry.slice(eq + 1));
      if (!existsSync(file)) throw new Error(`${where}.files[${j}]: ${entry} does not exist`);
      const real = relative(root, realpathSync(file));
      if (real.startsWith('..') || isAbsolute(real)) throw new Error(`${where}.files[${j}]: ${entry} is not in or below ${dir} (kustomize's load restrictor refuses it)`);
      if (key in data) throw new Error(`${where}.files[${j}]: key ${key} twice`);
      files.add(file);
      data[key] = readFileSync(file, 'utf8');
    }
    const name = text(raw['name'], `${where}.name`);
    const sorted = Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const metadata: Mapping = labels === undefined ? { name } : { name, labels: { ...labels } };
    return { file: path, apiVersion: 'v1', kind: 'ConfigMap', name, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: sorted } };
  });
}

function mapping(value: unknown, where: string): Mapping {
  if (!isMapping(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}

function readKustomization(path: string): Mapping[] {
  return parseAllDocuments(readFileSync(path, 'utf8'), { uniqueKeys: true }).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const body: unknown = doc.toJS();
    if (!isMapping(body)) throw new Error(`${path}: not a mapping`);
    return [body];
  });
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value;
}
function stringList(value: unknown, where: string): string[] {
  return list(value, where).map((v, i) => text(v, `${where}[${i}]`));
}

/** Strategic merge of `patch` into `original` at `path` (dotted, `[]` for a list item). */
function merge(original: unknown, patch: unknown, path: string, where: string): unknown {
  if (isMapping(patch)) {
    if (!isMapping(original)) return strip(patch, path, where);
    if (RETAIN_KEYS.has(path)) throw new Error(`${where}: ${path} merges with retainKeys in kustomize; patch it only where the original has none`);
    const out: Mapping = { ...original };
    for (const [key, value] of Object.entries(patch)) {
      if (key.startsWith('$')) throw new Error(`${where}: patch directive ${key} at ${path || '.'} is not implemented`);
      const child = path === '' ? key : `${path}.${key}`;
      // `key: null` deletes the key, as in kustomize.
      if (value === null) delete out[key];
      else out[key] = merge(original[key], value, child, where);
    }
    return out;
  }
  if (Array.isArray(patch)) {
    if (original === undefined || REPLACED_LISTS.has(path)) return strip(patch, path, where);
    const key = MERGE_KEYS[path];
    if (key === undefined || !Array.isArray(original)) {
      throw new Error(`${where}: the list at ${path} would merge with the original's; kustomize-lite knows no merge key for it`);
    }
    const out = [...original];
    for (const item of patch) {
      if (!isMapping(item) || item[key] === undefined) throw new Error(`${where}: an item of ${path} has no ${key}`);
      const i = out.findIndex((o) => isMapping(o) && o[key] === item[key]);
      if (i >= 0) out[i] = merge(out[i], item, `${path}[]`, where);
      else out.push(strip(item, `${path}[]`, where));
    }
    return out;
  }
  return patch;
}

/** A patch value added where the original has nothing: refuses directives inside it. */
function strip(value: unknown, path: string, where: string): unknown {
  if (Array.isArray(value)) return value.map((v) => strip(v, `${path}[]`, where));
  if (isMapping(value)) {
    for (const key of Object.keys(value)) if (key.startsWith('$')) throw new Error(`${where}: patch directive ${key} at ${path} is not implemented`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v, `${path}.${k}`, where)]));
  }
  return value;
}
