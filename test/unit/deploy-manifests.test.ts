/**
 * Keeps deploy/kubernetes/ in step with the gateway it deploys: the ConfigMap's config passes the
 * gateway's own validation, and the Deployment, Service, PVC, Secret and NetworkPolicy agree with
 * that config (ports, probes, mount paths, environment, drain budget) and with the Dockerfile
 * (user, CMD). Plain file reads, no cluster: a drift here is a broken rollout there.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { expandEnv, parseConfigText } from '../../src/config/load.js';
import { DEFAULT_ADMIN, DEFAULT_LEDGER_PATH, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_GRACE_MS } from '../../src/config/schema.js';

const MANIFEST_DIR = new URL('../../deploy/kubernetes/', import.meta.url);
const DOCKERFILE = new URL('../../Dockerfile', import.meta.url);
const CONFIGMAP = 'x402-gateway-config';
const SECRET = 'x402-gateway-secrets';
const GATEWAY_CONTAINER = 'x402-gateway';
const UPSTREAM_CONTAINER = 'legacy-api';
/** Users of the official node images, for a Dockerfile `USER` given by name. */
const IMAGE_USERS: Readonly<Record<string, { uid: number; gid: number }>> = { node: { uid: 1000, gid: 1000 } };
/** Stand-ins for the Secret's values: the Secret itself holds deliberately invalid placeholders. */
const DUMMY_SECRET_VALUES: Readonly<Record<string, string>> = {
  SETTLER_KEY: '0x' + '11'.repeat(32),
  UPSTREAM_TOKEN: 'dummy-upstream-token',
  BASE_RPC_URL: 'https://rpc.example.com',
};
/** `${NAME}` or `${NAME:-fallback}`; `$${` is an escaped literal. The same grammar as load.ts. */
const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g;

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function mapping(value: unknown, where: string): Mapping {
  if (!isMapping(value)) throw new Error(`${where}: expected a mapping`);
  return value;
}
function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value;
}
function text(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Error(`${where}: expected a string`);
  return value;
}
function int(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new Error(`${where}: expected an integer`);
  return value;
}
/** Walks `a.b.c` through nested mappings; undefined where a key is absent. */
function at(root: unknown, path: string): unknown {
  let value = root;
  for (const key of path.split('.')) {
    if (!isMapping(value)) return undefined;
    value = value[key];
  }
  return value;
}

// ---- manifests ----

interface Manifest {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
  readonly body: Mapping;
}

function loadManifests(): Manifest[] {
  const files = readdirSync(MANIFEST_DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
  return files.flatMap((file) => {
    const docs = parseAllDocuments(readFileSync(new URL(file, MANIFEST_DIR), 'utf8'), { uniqueKeys: true });
    if (!Array.isArray(docs)) return [];
    return docs.flatMap((doc, i) => {
      if (doc.errors.length > 0) throw new Error(`${file}#${i}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const body: unknown = doc.toJS();
      if (body === null || body === undefined) return [];
      const where = `${file}#${i}`;
      const m = mapping(body, where);
      return [{ file, kind: text(m['kind'], `${where}.kind`), name: text(at(m, 'metadata.name'), `${where}.metadata.name`), body: m }];
    });
  });
}

const manifests = loadManifests();

function one(kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.name === name));
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as Manifest;
}

const deployment = one('Deployment');
const podSpec = mapping(at(deployment.body, 'spec.template.spec'), 'Deployment spec.template.spec');
const podLabels = mapping(at(deployment.body, 'spec.template.metadata.labels'), 'Deployment pod labels');
const containers = list(podSpec['containers'], 'containers').map((c, i) => mapping(c, `containers[${i}]`));
const volumes = list(podSpec['volumes'] ?? [], 'volumes').map((v, i) => mapping(v, `volumes[${i}]`));

function container(name: string): Mapping {
  const found = containers.find((c) => c['name'] === name);
  if (!found) throw new Error(`no container ${name} in the Deployment`);
  return found;
}
const gateway = container(GATEWAY_CONTAINER);
const upstream = container(UPSTREAM_CONTAINER);

interface ContainerPort {
  readonly container: string;
  readonly name: string | undefined;
  readonly number: number;
}
const podPorts: ContainerPort[] = containers.flatMap((c) =>
  list(c['ports'] ?? [], `${String(c['name'])}.ports`).map((p, i) => {
    const port = mapping(p, `${String(c['name'])}.ports[${i}]`);
    const name = port['name'];
    return { container: text(c['name'], 'container name'), name: typeof name === 'string' ? name : undefined, number: int(port['containerPort'], 'containerPort') };
  }),
);
/** A probe's, Service's or NetworkPolicy's port (a number or a pod-wide port name) as a number. */
function resolvePort(port: unknown, where: string): number {
  if (typeof port === 'number') return port;
  const named = podPorts.filter((p) => p.name === text(port, where));
  if (named.length !== 1) throw new Error(`${where}: port name ${String(port)} matches ${named.length} container ports`);
  return (named[0] as ContainerPort).number;
}
function portNamed(containerName: string, name: string): number {
  const found = podPorts.find((p) => p.container === containerName && p.name === name);
  if (!found) throw new Error(`container ${containerName} has no port named ${name}`);
  return found.number;
}

/** Seconds a container's preStop hook sleeps: the sleep action, or `exec: sleep N`. */
function preStopSleepSeconds(c: Mapping): number {
  const hook = at(c, 'lifecycle.preStop');
  if (hook === undefined) return 0;
  const sleep = at(hook, 'sleep.seconds');
  if (sleep !== undefined) return int(sleep, 'preStop.sleep.seconds');
  const command = list(at(hook, 'exec.command'), 'preStop.exec.command').map(String).join(' ');
  const match = /(?:^|\s|\/)sleep\s+(\d+)\s*$/.exec(command);
  if (!match) throw new Error(`preStop runs "${command}": not a sleep this test can time`);
  return Number(match[1]);
}

function mounts(c: Mapping): Mapping[] {
  return list(c['volumeMounts'] ?? [], `${String(c['name'])}.volumeMounts`).map((m, i) => mapping(m, `volumeMounts[${i}]`));
}
function volume(name: unknown): Mapping {
  const found = volumes.find((v) => v['name'] === name);
  if (!found) throw new Error(`no volume ${String(name)} in the pod`);
  return found;
}

function secretKeys(name: string): Set<string> {
  const secret = one('Secret', name).body;
  return new Set([...Object.keys(mapping(secret['stringData'] ?? {}, 'stringData')), ...Object.keys(mapping(secret['data'] ?? {}, 'data'))]);
}

/** The gateway container's environment: literal values, and the names that come from the Secret. */
function gatewayEnv(): { literal: Map<string, string>; fromSecret: Set<string> } {
  const literal = new Map<string, string>();
  const fromSecret = new Set<string>();
  for (const [i, raw] of list(gateway['env'] ?? [], 'env').entries()) {
    const env = mapping(raw, `env[${i}]`);
    const name = text(env['name'], `env[${i}].name`);
    if (env['value'] !== undefined) {
      literal.set(name, text(env['value'], `env ${name}.value`));
      continue;
    }
    const ref = mapping(at(env, 'valueFrom.secretKeyRef'), `env ${name}: only value or valueFrom.secretKeyRef are understood`);
    const secret = text(ref['name'], `env ${name} secret name`);
    const key = text(ref['key'], `env ${name} secret key`);
    if (!secretKeys(secret).has(key)) throw new Error(`env ${name}: Secret ${secret} has no key ${key}`);
    fromSecret.add(name);
  }
  for (const [i, raw] of list(gateway['envFrom'] ?? [], 'envFrom').entries()) {
    const secret = text(at(raw, 'secretRef.name'), `envFrom[${i}]: only secretRef is understood`);
    for (const key of secretKeys(secret)) fromSecret.add(key);
  }
  return { literal, fromSecret };
}

/** The environment the gateway process would see, with dummies for the Secret's values. */
function dummyEnv(): Record<string, string> {
  const { literal, fromSecret } = gatewayEnv();
  const env: Record<string, string> = Object.fromEntries(literal);
  for (const name of fromSecret) {
    const dummy = DUMMY_SECRET_VALUES[name];
    if (dummy === undefined) throw new Error(`add a dummy value for ${name} to DUMMY_SECRET_VALUES`);
    env[name] = dummy;
  }
  return env;
}

// ---- the config in the ConfigMap ----

const configMap = one('ConfigMap', CONFIGMAP);
const args = list(gateway['args'], 'gateway args').map((a, i) => text(a, `args[${i}]`));
const configPath = (() => {
  const i = args.findIndex((a) => a === '--config' || a === '-c');
  const path = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith('--config='))?.slice('--config='.length);
  if (path === undefined) throw new Error('the gateway container passes no --config');
  return path;
})();
// Keys are file names with dots, so no `at()` path here.
const configText = text(mapping(configMap.body['data'], 'ConfigMap data')[posix.basename(configPath)], `ConfigMap data key ${posix.basename(configPath)}`);
/**
 * The config's YAML data after `${VAR}` expansion, without the schema, so a validation failure
 * fails one test rather than all. Unset variables are reported by the env and validation tests.
 */
const rawConfig = mapping(expandEnv(parse(configText), dummyEnv(), []), 'gateway.yaml');
const listenPort = int(at(rawConfig, 'listen.port') ?? DEFAULT_LISTEN.port, 'listen.port');
const adminPort = int(at(rawConfig, 'admin.port') ?? DEFAULT_ADMIN.port, 'admin.port');
const adminHost = text(at(rawConfig, 'admin.host') ?? DEFAULT_ADMIN.host, 'admin.host');
const graceMs = int(at(rawConfig, 'shutdown.graceMs') ?? DEFAULT_SHUTDOWN_GRACE_MS, 'shutdown.graceMs');
const ledgerPath = text(at(rawConfig, 'ledger.path') ?? DEFAULT_LEDGER_PATH, 'ledger.path');

// ---- the Dockerfile's final stage ----

const image = (() => {
  const lines = readFileSync(DOCKERFILE, 'utf8').replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  const stage = lines.slice(lastFrom);
  const last = (instruction: string): string | undefined =>
    stage
      .filter((l) => new RegExp(`^${instruction}\\s`, 'i').test(l))
      .map((l) => l.slice(instruction.length).trim())
      .pop();
  const execForm = (instruction: string): string[] => {
    const value = last(instruction);
    if (value === undefined) throw new Error(`the Dockerfile's final stage has no ${instruction}`);
    return list(JSON.parse(value), `${instruction} (exec form)`).map((a) => text(a, instruction));
  };
  const user = last('USER') ?? 'root';
  const ids = /^\d+$/.test(user) ? { uid: Number(user), gid: Number(user) } : IMAGE_USERS[user];
  if (!ids) throw new Error(`Dockerfile USER ${user}: add its uid to IMAGE_USERS`);
  return { entrypoint: execForm('ENTRYPOINT'), cmd: execForm('CMD'), workdir: last('WORKDIR') ?? '/', ...ids };
})();

describe('deploy/kubernetes manifests', () => {
  it('ship a ConfigMap whose gateway.yaml passes the gateway validation with the container env', () => {
    const result = parseConfigText(configText, dummyEnv());
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('use every ${VAR} of the config from the container env, backed by existing Secret keys', () => {
    const { literal, fromSecret } = gatewayEnv();
    const required = [...configText.matchAll(ENV_REF)].filter((m) => m[1] !== undefined && m[2] === undefined).map((m) => m[1] as string);
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(literal.has(name) || fromSecret.has(name), `${name} is not in the gateway container's env`).toBe(true);
  });

  it('give the gateway container the config ports: http = listen.port, admin = admin.port', () => {
    expect(portNamed(GATEWAY_CONTAINER, 'http')).toBe(listenPort);
    expect(portNamed(GATEWAY_CONTAINER, 'admin')).toBe(adminPort);
    // The kubelet probes the pod IP, so a loopback admin listener would fail every probe.
    expect(['0.0.0.0', '::']).toContain(adminHost);
  });

  it('probe /healthz (liveness) and /readyz (readiness) on the admin port', () => {
    const probe = (kind: string) => mapping(at(gateway, `${kind}.httpGet`), `${kind}.httpGet`);
    for (const [kind, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
      expect(probe(kind)['path'], kind).toBe(path);
      expect(resolvePort(probe(kind)['port'], kind), kind).toBe(adminPort);
    }
    if (gateway['startupProbe'] !== undefined) {
      expect(['/healthz', '/readyz']).toContain(probe('startupProbe')['path']);
      expect(resolvePort(probe('startupProbe')['port'], 'startupProbe')).toBe(adminPort);
    }
  });

  it('expose only the public port through a ClusterIP Service that selects the pod', () => {
    const service = one('Service').body;
    expect(at(service, 'spec.type') ?? 'ClusterIP').toBe('ClusterIP');
    expect(podLabels).toMatchObject(mapping(at(service, 'spec.selector'), 'Service selector'));
    const ports = list(at(service, 'spec.ports'), 'Service ports').map((p, i) => mapping(p, `Service ports[${i}]`));
    expect(ports.length).toBeGreaterThan(0);
    const targets = ports.map((p, i) => resolvePort(p['targetPort'] ?? p['port'], `Service ports[${i}].targetPort`));
    expect(new Set(targets)).toEqual(new Set([listenPort]));
    expect(targets).not.toContain(adminPort);
  });

  it('ship a NetworkPolicy that admits the admin port only from named sources and never the upstream port', () => {
    const policies = manifests.filter((m) => m.kind === 'NetworkPolicy');
    const upstreamPorts = podPorts.filter((p) => p.container === UPSTREAM_CONTAINER).map((p) => p.number);
    expect(policies).toHaveLength(1);
    expect(upstreamPorts).not.toEqual([]);
    for (const policy of policies) {
      expect(podLabels).toMatchObject(mapping(at(policy.body, 'spec.podSelector.matchLabels'), 'podSelector'));
      const rules = list(at(policy.body, 'spec.ingress') ?? [], 'ingress').map((r, i) => mapping(r, `ingress[${i}]`));
      for (const [i, rule] of rules.entries()) {
        // A rule without ports admits every port, the upstream's included.
        const ports = list(rule['ports'], `ingress[${i}].ports`).map((p, j) => resolvePort(at(p, 'port'), `ingress[${i}].ports[${j}]`));
        for (const port of upstreamPorts) expect(ports, `ingress[${i}] admits the unpaid upstream port`).not.toContain(port);
        if (rule['from'] === undefined) expect(ports, `ingress[${i}] admits the admin port from anywhere`).not.toContain(adminPort);
      }
    }
  });

  it('mount the config as a directory (no subPath, so reloads happen) at the --config directory', () => {
    const configDir = posix.dirname(configPath);
    const mount = mounts(gateway).find((m) => posix.normalize(text(m['mountPath'], 'mountPath')).replace(/\/$/, '') === configDir);
    if (!mount) throw new Error(`nothing is mounted at ${configDir}`);
    expect(mount['subPath']).toBeUndefined();
    expect(mount['subPathExpr']).toBeUndefined();
    const source = mapping(volume(mount['name'])['configMap'], `volume ${String(mount['name'])}: not a ConfigMap`);
    expect(source['name']).toBe(CONFIGMAP);
    // `items` would rename or drop keys; the file must keep its name.
    expect(source['items']).toBeUndefined();
    // The mount updates, but only a watching gateway notices.
    expect(at(rawConfig, 'reload.watch') ?? true).toBe(true);
    // No ConfigMap or Secret volume anywhere in the pod is mounted with subPath.
    for (const c of containers) {
      for (const m of mounts(c)) {
        const v = volume(m['name']);
        if (v['configMap'] !== undefined || v['secret'] !== undefined) expect(m['subPath'], `${String(c['name'])}: ${String(m['mountPath'])}`).toBeUndefined();
      }
    }
  });

  it('keep the ledger on a writable PVC mount, on one replica that never overlaps another', () => {
    const ledger = posix.resolve(image.workdir, ledgerPath);
    const under = mounts(gateway)
      .filter((m) => {
        const dir = text(m['mountPath'], 'mountPath').replace(/\/$/, '');
        return ledger.startsWith(dir + '/');
      })
      .sort((a, b) => String(b['mountPath']).length - String(a['mountPath']).length)[0];
    if (!under) throw new Error(`ledger ${ledger} is on the read-only root filesystem`);
    expect(under['readOnly'] ?? false).toBe(false);
    const claim = text(at(volume(under['name']), 'persistentVolumeClaim.claimName'), `ledger volume: receipts must survive restarts, so a PVC`);
    expect(list(at(one('PersistentVolumeClaim', claim).body, 'spec.accessModes'), 'accessModes')).toContain('ReadWriteOnce');
    // One SQLite file on a ReadWriteOnce volume: one writer, and no surge pod during a rollout.
    expect(at(deployment.body, 'spec.replicas')).toBe(1);
    expect(at(deployment.body, 'spec.strategy.type')).toBe('Recreate');
  });

  it('give SIGKILL a later deadline than the preStop sleep plus shutdown.graceMs', () => {
    const graceSeconds = int(podSpec['terminationGracePeriodSeconds'], 'terminationGracePeriodSeconds');
    const gatewayDoneMs = preStopSleepSeconds(gateway) * 1000 + graceMs;
    expect(preStopSleepSeconds(gateway)).toBeGreaterThan(0);
    expect(graceSeconds * 1000).toBeGreaterThan(gatewayDoneMs);
    // The upstream gets SIGTERM after its own preStop; it must still answer the drain's requests.
    const upstreamSleepMs = preStopSleepSeconds(upstream) * 1000;
    expect(upstreamSleepMs).toBeGreaterThanOrEqual(gatewayDoneMs);
    expect(graceSeconds * 1000).toBeGreaterThan(upstreamSleepMs);
  });

  it("run the gateway as the Dockerfile's USER, non-root, read-only root, no privilege escalation", () => {
    const pod = mapping(podSpec['securityContext'] ?? {}, 'pod securityContext');
    const own = mapping(gateway['securityContext'] ?? {}, 'container securityContext');
    const effective = { ...pod, ...own };
    expect(effective['runAsUser']).toBe(image.uid);
    expect(effective['runAsNonRoot']).toBe(true);
    expect(own['readOnlyRootFilesystem']).toBe(true);
    expect(own['allowPrivilegeEscalation']).toBe(false);
    // A fresh volume is root-owned; fsGroup lets the image's user create the ledger on it.
    expect(pod['fsGroup']).toBe(image.gid);
  });

  it("keep the image's ENTRYPOINT and pass args shaped like its CMD", () => {
    expect(gateway['command']).toBeUndefined();
    expect(image.entrypoint.length).toBeGreaterThan(0);
    expect(args).toEqual(image.cmd);
  });

  it('ship Secret placeholders that cannot run as a real settler key', () => {
    const settlerKey = at(one('Secret', SECRET).body, 'stringData.SETTLER_KEY');
    expect(typeof settlerKey).toBe('string');
    expect(settlerKey).not.toMatch(/^0x[0-9a-fA-F]{64}$/);
  });
});
