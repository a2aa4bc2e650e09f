/**
 * Keeps deploy/kubernetes/ in step with the gateway it deploys, for both variants (the
 * kustomize overlays single and replicas, each built here by test/helpers/kustomize-lite.ts):
 * the ConfigMap is config/kubernetes.yaml and config/replicas-postgres.yaml as they are (generated
 * by config/kustomization.yaml), the config each variant loads passes the gateway's own
 * validation, and the Deployment, Service, PVC,
 * Secrets, NetworkPolicy, PodDisruptionBudget and HorizontalPodAutoscaler agree with that config
 * (ports, probes, mount paths, environment, drain budget, ledger store) and with the Dockerfile
 * (user, CMD). Plain file reads, no cluster: a drift here is a broken rollout there.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { expandEnv, parseConfigText } from '../../src/config/load.js';
import { DEFAULT_ADMIN, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_GRACE_MS } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { kustomizeBuild, readManifests, type Manifest, type Mapping } from '../helpers/kustomize-lite.js';

const KUBE_DIR = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));
/** Where the ConfigMap's files are, with the kustomization that generates it. */
const CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));
const DOCKERFILE = new URL('../../Dockerfile', import.meta.url);
/**
 * The overlays, and the placeholder Secrets each one's pods read. The placeholders are not in
 * any kustomization (an apply would overwrite the real Secrets with them), so they are named here.
 */
const VARIANTS = {
  single: { overlay: 'overlays/single', secrets: ['base/secret.yaml'], configFile: 'kubernetes.yaml' },
  replicas: { overlay: 'overlays/replicas', secrets: ['base/secret.yaml', 'overlays/replicas/database-secret.yaml'], configFile: 'replicas-postgres.yaml' },
} as const;
type VariantName = keyof typeof VARIANTS;
const VARIANT_NAMES = Object.keys(VARIANTS) as VariantName[];
const CONFIGMAP = 'x402-gateway-config';
const SECRET = 'x402-gateway-secrets';
const GATEWAY_CONTAINER = 'x402-gateway';
const UPSTREAM_CONTAINER = 'legacy-api';
/**
 * PostgreSQL's default max_connections (100) less its superuser_reserved_connections (3): what
 * the replicas' pools may take together on a default server.
 */
const POSTGRES_CONNECTIONS = 97;
/** Users of the official node images, for a Dockerfile `USER` given by name. */
const IMAGE_USERS: Readonly<Record<string, { uid: number; gid: number }>> = { node: { uid: 1000, gid: 1000 } };
/** Stand-ins for the Secrets' values: the Secrets themselves hold deliberately invalid placeholders. */
const DUMMY_SECRET_VALUES: Readonly<Record<string, string>> = {
  SETTLER_KEY: '0x' + '11'.repeat(32),
  UPSTREAM_TOKEN: 'dummy-upstream-token',
  BASE_RPC_URL: 'https://rpc.example.com',
  ADMIN_TOKEN: 'dummy-admin-token-0123456789',
  DATABASE_URL: 'postgres://gateway:dummy@postgres.example.com:5432/x402',
};
/** `${NAME}` or `${NAME:-fallback}`; `$${` is an escaped literal. The same grammar as load.ts. */
const ENV_REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g;

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

// ---- one variant: its build, its pod, its config ----

interface ContainerPort {
  readonly container: string;
  readonly name: string | undefined;
  readonly number: number;
}

function loadVariant(variant: VariantName) {
  const build = kustomizeBuild(join(KUBE_DIR, VARIANTS[variant].overlay));
  const manifests = build.manifests;
  const secrets: Manifest[] = VARIANTS[variant].secrets.flatMap((file) => readManifests(join(KUBE_DIR, file)));

  function one(kind: string, name?: string): Manifest {
    const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.name === name));
    if (found.length !== 1) throw new Error(`${variant}: expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
    return found[0] as Manifest;
  }
  function secret(name: string): Manifest {
    const found = secrets.filter((m) => m.kind === 'Secret' && m.name === name);
    if (found.length !== 1) throw new Error(`${variant}: expected one placeholder Secret ${name} in ${VARIANTS[variant].secrets.join(', ')}, found ${found.length}`);
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

  function volume(name: unknown): Mapping {
    const found = volumes.find((v) => v['name'] === name);
    if (!found) throw new Error(`no volume ${String(name)} in the pod`);
    return found;
  }

  function secretKeys(name: string): Set<string> {
    const body = secret(name).body;
    return new Set([...Object.keys(mapping(body['stringData'] ?? {}, 'stringData')), ...Object.keys(mapping(body['data'] ?? {}, 'data'))]);
  }

  /** The gateway container's environment: literal values, and the names that come from a Secret (with the Secret's name). */
  function gatewayEnv(): { literal: Map<string, string>; fromSecret: Map<string, string> } {
    const literal = new Map<string, string>();
    const fromSecret = new Map<string, string>();
    for (const [i, raw] of list(gateway['env'] ?? [], 'env').entries()) {
      const env = mapping(raw, `env[${i}]`);
      const name = text(env['name'], `env[${i}].name`);
      if (env['value'] !== undefined) {
        literal.set(name, text(env['value'], `env ${name}.value`));
        continue;
      }
      const ref = mapping(at(env, 'valueFrom.secretKeyRef'), `env ${name}: only value or valueFrom.secretKeyRef are understood`);
      const secretName = text(ref['name'], `env ${name} secret name`);
      const key = text(ref['key'], `env ${name} secret key`);
      if (!secretKeys(secretName).has(key)) throw new Error(`env ${name}: Secret ${secretName} has no key ${key}`);
      fromSecret.set(name, secretName);
    }
    for (const [i, raw] of list(gateway['envFrom'] ?? [], 'envFrom').entries()) {
      const secretName = text(at(raw, 'secretRef.name'), `envFrom[${i}]: only secretRef is understood`);
      for (const key of secretKeys(secretName)) fromSecret.set(key, secretName);
    }
    return { literal, fromSecret };
  }

  /** The environment the gateway process would see, with dummies for the Secrets' values. */
  function dummyEnv(): Record<string, string> {
    const { literal, fromSecret } = gatewayEnv();
    const env: Record<string, string> = Object.fromEntries(literal);
    for (const name of fromSecret.keys()) {
      const dummy = DUMMY_SECRET_VALUES[name];
      if (dummy === undefined) throw new Error(`add a dummy value for ${name} to DUMMY_SECRET_VALUES`);
      env[name] = dummy;
    }
    return env;
  }

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
  /** The config as the gateway loads it (defaults applied); throws if it is invalid. */
  function config(): Config {
    const result = parseConfigText(configText, dummyEnv());
    if (!result.ok) throw new Error(`${variant} gateway.yaml: ${result.problems.join('; ')}`);
    return result.config;
  }

  return {
    build,
    manifests,
    one,
    secret,
    deployment,
    podSpec,
    podLabels,
    containers,
    volumes,
    gateway,
    upstream,
    podPorts,
    resolvePort,
    portNamed,
    volume,
    secretKeys,
    gatewayEnv,
    dummyEnv,
    args,
    configPath,
    configText,
    rawConfig,
    config,
    listenPort: int(at(rawConfig, 'listen.port') ?? DEFAULT_LISTEN.port, 'listen.port'),
    adminPort: int(at(rawConfig, 'admin.port') ?? DEFAULT_ADMIN.port, 'admin.port'),
    adminHost: text(at(rawConfig, 'admin.host') ?? DEFAULT_ADMIN.host, 'admin.host'),
    graceMs: int(at(rawConfig, 'shutdown.graceMs') ?? DEFAULT_SHUTDOWN_GRACE_MS, 'shutdown.graceMs'),
  };
}
type Variant = ReturnType<typeof loadVariant>;

const variants: Record<VariantName, Variant> = { single: loadVariant('single'), replicas: loadVariant('replicas') };

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

/** Every .yaml/.yml file under a directory, recursively. */
function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry) ? [path] : [];
  });
}

describe('deploy/kubernetes layout', () => {
  it('use every manifest file: in a build, or a placeholder Secret named in VARIANTS', () => {
    // A file no kustomization lists is silently never applied.
    const used = new Set([
      ...Object.values(variants).flatMap((v) => [...v.build.files]),
      ...Object.values(VARIANTS).flatMap((v) => v.secrets.map((f) => join(KUBE_DIR, f))),
    ]);
    const unused = yamlFiles(KUBE_DIR).filter((f) => !used.has(f)).map((f) => relative(KUBE_DIR, f));
    expect(unused).toEqual([]);
  });

  it('ship the same gateway config in both variants, apart from the ledger', () => {
    const withoutLedger = (v: Variant) => {
      const { ledger: _ledger, ...rest } = mapping(parse(v.configText), 'gateway.yaml');
      return rest;
    };
    expect(withoutLedger(variants.replicas)).toEqual(withoutLedger(variants.single));
  });
});

describe.each(VARIANT_NAMES)('deploy/kubernetes/overlays/%s', (name) => {
  const v = variants[name];
  const { gateway, upstream, podSpec, podLabels, containers, manifests } = v;

  it('ship a ConfigMap whose gateway.yaml passes the gateway validation with the container env', () => {
    const result = parseConfigText(v.configText, v.dummyEnv());
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('use every ${VAR} of the config from the container env, backed by existing Secret keys', () => {
    const { literal, fromSecret } = v.gatewayEnv();
    // In values only: the file's comments mention `${VAR}` too, and comments are not expanded.
    const required = [...JSON.stringify(parse(v.configText)).matchAll(ENV_REF)].filter((m) => m[1] !== undefined && m[2] === undefined).map((m) => m[1] as string);
    expect(required.length).toBeGreaterThan(0);
    for (const env of required) expect(literal.has(env) || fromSecret.has(env), `${env} is not in the gateway container's env`).toBe(true);
  });

  it('give the gateway container the config ports: http = listen.port, admin = admin.port', () => {
    expect(v.portNamed(GATEWAY_CONTAINER, 'http')).toBe(v.listenPort);
    expect(v.portNamed(GATEWAY_CONTAINER, 'admin')).toBe(v.adminPort);
    // The kubelet probes the pod IP, so a loopback admin listener would fail every probe.
    expect(['0.0.0.0', '::']).toContain(v.adminHost);
  });

  it('probe /healthz (liveness) and /readyz (readiness) on the admin port', () => {
    const probe = (kind: string) => mapping(at(gateway, `${kind}.httpGet`), `${kind}.httpGet`);
    for (const [kind, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
      expect(probe(kind)['path'], kind).toBe(path);
      expect(v.resolvePort(probe(kind)['port'], kind), kind).toBe(v.adminPort);
    }
    if (gateway['startupProbe'] !== undefined) {
      expect(['/healthz', '/readyz']).toContain(probe('startupProbe')['path']);
      expect(v.resolvePort(probe('startupProbe')['port'], 'startupProbe')).toBe(v.adminPort);
    }
  });

  it('expose only the public port through a ClusterIP Service that selects the pod', () => {
    const service = v.one('Service').body;
    expect(at(service, 'spec.type') ?? 'ClusterIP').toBe('ClusterIP');
    expect(podLabels).toMatchObject(mapping(at(service, 'spec.selector'), 'Service selector'));
    const ports = list(at(service, 'spec.ports'), 'Service ports').map((p, i) => mapping(p, `Service ports[${i}]`));
    expect(ports.length).toBeGreaterThan(0);
    const targets = ports.map((p, i) => v.resolvePort(p['targetPort'] ?? p['port'], `Service ports[${i}].targetPort`));
    expect(new Set(targets)).toEqual(new Set([v.listenPort]));
    expect(targets).not.toContain(v.adminPort);
  });

  it('ship a NetworkPolicy that admits the admin port only from named sources and never the upstream port', () => {
    const policies = manifests.filter((m) => m.kind === 'NetworkPolicy');
    const upstreamPorts = v.podPorts.filter((p) => p.container === UPSTREAM_CONTAINER).map((p) => p.number);
    expect(policies).toHaveLength(1);
    expect(upstreamPorts).not.toEqual([]);
    for (const policy of policies) {
      expect(podLabels).toMatchObject(mapping(at(policy.body, 'spec.podSelector.matchLabels'), 'podSelector'));
      const rules = list(at(policy.body, 'spec.ingress') ?? [], 'ingress').map((r, i) => mapping(r, `ingress[${i}]`));
      for (const [i, rule] of rules.entries()) {
        // A rule without ports admits every port, the upstream's included.
        const ports = list(rule['ports'], `ingress[${i}].ports`).map((p, j) => v.resolvePort(at(p, 'port'), `ingress[${i}].ports[${j}]`));
        for (const port of upstreamPorts) expect(ports, `ingress[${i}] admits the unpaid upstream port`).not.toContain(port);
        if (rule['from'] === undefined) expect(ports, `ingress[${i}] admits the admin port from anywhere`).not.toContain(v.adminPort);
      }
    }
  });

  it('mount the config as a directory (no subPath, so reloads happen) at the --config directory', () => {
    const configDir = posix.dirname(v.configPath);
    const mount = mounts(gateway).find((m) => posix.normalize(text(m['mountPath'], 'mountPath')).replace(/\/$/, '') === configDir);
    if (!mount) throw new Error(`nothing is mounted at ${configDir}`);
    expect(mount['subPath']).toBeUndefined();
    expect(mount['subPathExpr']).toBeUndefined();
    const source = mapping(v.volume(mount['name'])['configMap'], `volume ${String(mount['name'])}: not a ConfigMap`);
    expect(source['name']).toBe(CONFIGMAP);
    // `items` would rename or drop keys; the file must keep its name.
    expect(source['items']).toBeUndefined();
    // The mount updates, but only a watching gateway notices.
    expect(at(v.rawConfig, 'reload.watch') ?? true).toBe(true);
    // No ConfigMap or Secret volume anywhere in the pod is mounted with subPath.
    for (const c of containers) {
      for (const m of mounts(c)) {
        const vol = v.volume(m['name']);
        if (vol['configMap'] !== undefined || vol['secret'] !== undefined) expect(m['subPath'], `${String(c['name'])}: ${String(m['mountPath'])}`).toBeUndefined();
      }
    }
  });

  it('give SIGKILL a later deadline than the preStop sleep plus shutdown.graceMs', () => {
    const graceSeconds = int(podSpec['terminationGracePeriodSeconds'], 'terminationGracePeriodSeconds');
    const gatewayDoneMs = preStopSleepSeconds(gateway) * 1000 + v.graceMs;
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

  it('limit the memory of every container', () => {
    for (const c of containers) expect(at(c, 'resources.limits.memory'), String(c['name'])).toBeDefined();
  });

  it("keep the image's ENTRYPOINT and pass args shaped like its CMD, naming this variant's file in the config directory", () => {
    expect(gateway['command']).toBeUndefined();
    expect(image.entrypoint.length).toBeGreaterThan(0);
    // The CMD's `start --config /etc/x402-gateway/gateway.yaml`, with the ConfigMap's file for this variant.
    expect(v.args.slice(0, -1)).toEqual(image.cmd.slice(0, -1));
    expect(posix.dirname(v.configPath)).toBe(posix.dirname(image.cmd[image.cmd.length - 1] ?? ''));
    expect(posix.basename(v.configPath)).toBe(VARIANTS[name].configFile);
  });

  it('load config/kubernetes.yaml or config/replicas-postgres.yaml as it is: the ConfigMap holds exactly the files of config/', () => {
    const data = mapping(v.one('ConfigMap', CONFIGMAP).body['data'], 'ConfigMap data');
    const files = Object.values(VARIANTS).map((x) => x.configFile);
    expect(Object.keys(data).sort()).toEqual([...files].sort());
    for (const file of files) expect(data[file], file).toBe(readFileSync(join(CONFIG_DIR, file), 'utf8'));
    expect(v.configText).toBe(readFileSync(join(CONFIG_DIR, VARIANTS[name].configFile), 'utf8'));
    expect(v.build.files).toContain(join(CONFIG_DIR, 'kustomization.yaml'));
  });

  it('take the settler key from the Secret, whose placeholder cannot run as a real key', () => {
    expect(v.gatewayEnv().fromSecret.get('SETTLER_KEY')).toBe(SECRET);
    const settlerKey = at(v.secret(SECRET).body, 'stringData.SETTLER_KEY');
    expect(typeof settlerKey).toBe('string');
    expect(settlerKey).not.toMatch(/^0x[0-9a-fA-F]{64}$/);
  });

  it('guard an admin listener bound beyond loopback with admin.token from the Secret, whose placeholder cannot run', () => {
    // The gateway refuses a non-loopback admin listener without a token (or allowUnauthenticated).
    expect(v.adminHost).not.toMatch(/^(127\.|localhost$|::1$)/);
    expect(at(parse(v.configText), 'admin.token')).toBe('${ADMIN_TOKEN}');
    expect(v.config().admin.token).toBe(DUMMY_SECRET_VALUES['ADMIN_TOKEN']);
    expect(v.gatewayEnv().fromSecret.get('ADMIN_TOKEN')).toBe(SECRET);
    const placeholder = text(at(v.secret(SECRET).body, 'stringData.ADMIN_TOKEN'), 'stringData.ADMIN_TOKEN');
    expect(parseConfigText(v.configText, { ...v.dummyEnv(), ADMIN_TOKEN: placeholder }).ok).toBe(false);
  });

  it('leave every Secret out of the build, so an apply never overwrites the real values with placeholders', () => {
    expect(manifests.filter((m) => m.kind === 'Secret').map((m) => m.name)).toEqual([]);
  });
});

describe('kustomize-lite, on what the manifests rely on', () => {
  // kubectl (or kustomize) where it is installed: the real build must be what the test checks.
  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl).each(VARIANT_NAMES)('builds %s as `kubectl kustomize` does (same resources, same content)', (name) => {
    const real = spawnSync('kubectl', ['kustomize', join(KUBE_DIR, VARIANTS[name].overlay)], { encoding: 'utf8' });
    expect(real.status, real.stderr).toBe(0);
    // kustomize's strategic merge may reorder the items of a merged list (containers, env):
    // Kubernetes reads those by name, so they are compared by name.
    const byName = (value: unknown): unknown => {
      if (Array.isArray(value)) {
        const items = value.map(byName);
        const key = (x: unknown) => (isMapping(x) && typeof x['name'] === 'string' ? x['name'] : undefined);
        return items.every((x) => key(x) !== undefined) ? items.sort((a, b) => String(key(a)).localeCompare(String(key(b)))) : items;
      }
      return isMapping(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, byName(v)])) : value;
    };
    const byId = (ms: readonly { kind: string; name: string; body: Mapping }[]) => new Map(ms.map((m) => [`${m.kind} ${m.name}`, byName(m.body)]));
    const dir = mkdtempSync(join(tmpdir(), 'kustomize-real-'));
    try {
      writeFileSync(join(dir, 'built.yaml'), real.stdout);
      expect(byId(variants[name].manifests)).toEqual(byId(readManifests(join(dir, 'built.yaml'))));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  function tryBuild(kustomization: string, files: Record<string, string>): () => unknown {
    const dir = mkdtempSync(join(tmpdir(), 'kustomize-lite-'));
    mkdirSync(join(dir, 'k'));
    writeFileSync(join(dir, 'k', 'kustomization.yaml'), kustomization);
    for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
    return () => {
      try {
        return kustomizeBuild(join(dir, 'k'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
  }
  const HEAD = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n';

  it("refuses a generator's file outside the kustomization's directory, as kustomize's load restrictor does", () => {
    const build = tryBuild(`${HEAD}generatorOptions: { disableNameSuffixHash: true }\nconfigMapGenerator: [{ name: c, files: [../outside.yaml] }]\n`, { 'outside.yaml': 'a: 1\n' });
    expect(build).toThrow(/not in or below .*load restrictor/);
  });

  it('refuses a generated name with the content-hash suffix, which it does not implement', () => {
    const build = tryBuild(`${HEAD}configMapGenerator: [{ name: c, files: [x.yaml] }]\n`, {});
    expect(build).toThrow(/disableNameSuffixHash: true/);
  });

  it('generates a ConfigMap keyed by file name or by key=path, with the generator labels', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kustomize-lite-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), `${HEAD}generatorOptions: { disableNameSuffixHash: true, labels: { a: b } }\nconfigMapGenerator: [{ name: c, files: [z.yaml, renamed.yaml=x.yaml] }]\n`);
      writeFileSync(join(dir, 'x.yaml'), 'x: 1\n');
      writeFileSync(join(dir, 'z.yaml'), 'z: 2\n');
      const [cm, ...rest] = kustomizeBuild(dir).manifests;
      expect(rest).toEqual([]);
      expect(cm?.body).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', labels: { a: 'b' } }, data: { 'renamed.yaml': 'x: 1\n', 'z.yaml': 'z: 2\n' } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/kubernetes/overlays/single', () => {
  const v = variants.single;

  it('keep the SQLite ledger on a writable PVC mount, on one replica that never overlaps another', () => {
    const ledger = v.config().ledger;
    if (ledger.store !== 'sqlite') throw new Error(`the single variant's ledger is ${ledger.store}, not sqlite`);
    const file = posix.resolve(image.workdir, ledger.path);
    const under = mounts(v.gateway)
      .filter((m) => file.startsWith(text(m['mountPath'], 'mountPath').replace(/\/$/, '') + '/'))
      .sort((a, b) => String(b['mountPath']).length - String(a['mountPath']).length)[0];
    if (!under) throw new Error(`ledger ${file} is on the read-only root filesystem`);
    expect(under['readOnly'] ?? false).toBe(false);
    const claim = text(at(v.volume(under['name']), 'persistentVolumeClaim.claimName'), `ledger volume: receipts must survive restarts, so a PVC`);
    expect(list(at(v.one('PersistentVolumeClaim', claim).body, 'spec.accessModes'), 'accessModes')).toContain('ReadWriteOnce');
    // One SQLite file on a ReadWriteOnce volume: one writer, and no surge pod during a rollout.
    expect(at(v.deployment.body, 'spec.replicas')).toBe(1);
    expect(at(v.deployment.body, 'spec.strategy.type')).toBe('Recreate');
  });

  it('ship no autoscaler and no disruption budget: either would fight the single SQLite writer', () => {
    expect(v.manifests.filter((m) => m.kind === 'HorizontalPodAutoscaler' || m.kind === 'PodDisruptionBudget')).toEqual([]);
  });
});

describe('deploy/kubernetes/overlays/replicas', () => {
  const v = variants.replicas;
  const replicas = int(at(v.deployment.body, 'spec.replicas'), 'spec.replicas');
  const hpa = v.one('HorizontalPodAutoscaler').body;
  const minReplicas = int(at(hpa, 'spec.minReplicas'), 'HPA minReplicas');
  const maxReplicas = int(at(hpa, 'spec.maxReplicas'), 'HPA maxReplicas');

  it('run several replicas and roll them without losing capacity', () => {
    expect(replicas).toBeGreaterThanOrEqual(2);
    expect(at(v.deployment.body, 'spec.strategy.type')).toBe('RollingUpdate');
    expect(at(v.deployment.body, 'spec.strategy.rollingUpdate.maxUnavailable')).toBe(0);
    expect(at(v.deployment.body, 'spec.strategy.rollingUpdate.maxSurge')).toBe(1);
  });

  it('keep the ledger in PostgreSQL at ${DATABASE_URL}, taken from a Secret', () => {
    // The URL carries the password: the config names the variable, never the value.
    expect(at(parse(v.configText), 'ledger.url')).toBe('${DATABASE_URL}');
    expect(v.config().ledger.store).toBe('postgres');
    const env = list(v.gateway['env'], 'env').map((e, i) => mapping(e, `env[${i}]`)).find((e) => e['name'] === 'DATABASE_URL');
    if (!env) throw new Error('DATABASE_URL is not in the gateway container env');
    expect(env['value']).toBeUndefined();
    const ref = mapping(at(env, 'valueFrom.secretKeyRef'), 'DATABASE_URL: valueFrom.secretKeyRef');
    expect(v.secretKeys(text(ref['name'], 'secretKeyRef.name'))).toContain(ref['key']);
  });

  it('ship a DATABASE_URL placeholder that fails validation rather than naming a made-up server', () => {
    const name = v.gatewayEnv().fromSecret.get('DATABASE_URL');
    if (name === undefined) throw new Error('DATABASE_URL does not come from a Secret');
    const placeholder = text(at(v.secret(name).body, 'stringData.DATABASE_URL'), 'stringData.DATABASE_URL');
    const result = parseConfigText(v.configText, { ...v.dummyEnv(), DATABASE_URL: placeholder });
    expect(result.ok).toBe(false);
  });

  it('keep no ledger file: no PVC, no persistent or ephemeral volume', () => {
    expect(v.manifests.filter((m) => m.kind === 'PersistentVolumeClaim')).toEqual([]);
    for (const vol of v.volumes) {
      expect(vol['persistentVolumeClaim'], String(vol['name'])).toBeUndefined();
      expect(vol['ephemeral'], String(vol['name'])).toBeUndefined();
    }
  });

  it('ship a PodDisruptionBudget for the pods that always leaves one running', () => {
    const pdb = v.one('PodDisruptionBudget').body;
    expect(v.podLabels).toMatchObject(mapping(at(pdb, 'spec.selector.matchLabels'), 'PDB selector'));
    const maxUnavailable = at(pdb, 'spec.maxUnavailable');
    const minAvailable = at(pdb, 'spec.minAvailable');
    expect([maxUnavailable, minAvailable].filter((x) => x !== undefined)).toHaveLength(1);
    if (maxUnavailable !== undefined) {
      expect(int(maxUnavailable, 'maxUnavailable')).toBeGreaterThanOrEqual(1);
      expect(int(maxUnavailable, 'maxUnavailable')).toBeLessThan(minReplicas);
    } else {
      // At least one pod stays, and a drain at the HPA's floor can still evict one.
      expect(int(minAvailable, 'minAvailable')).toBeGreaterThanOrEqual(1);
      expect(int(minAvailable, 'minAvailable')).toBeLessThan(minReplicas);
    }
  });

  it('ship a CPU HorizontalPodAutoscaler for the Deployment, never below two replicas', () => {
    expect(v.one('HorizontalPodAutoscaler').apiVersion).toBe('autoscaling/v2');
    expect(mapping(at(hpa, 'spec.scaleTargetRef'), 'scaleTargetRef')).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment', name: v.deployment.name });
    expect(minReplicas).toBeGreaterThanOrEqual(2);
    expect(maxReplicas).toBeGreaterThanOrEqual(minReplicas);
    expect(replicas).toBeGreaterThanOrEqual(minReplicas);
    expect(replicas).toBeLessThanOrEqual(maxReplicas);
    const metrics = list(at(hpa, 'spec.metrics'), 'HPA metrics');
    expect(metrics.some((m) => at(m, 'type') === 'Resource' && at(m, 'resource.name') === 'cpu')).toBe(true);
    // CPU utilization is relative to requests: a container without one leaves the HPA blind.
    for (const c of v.containers) expect(at(c, 'resources.requests.cpu'), String(c['name'])).toBeDefined();
  });

  it("fit every replica's pool, at the HPA's maximum plus the surge pod, into a default PostgreSQL", () => {
    const ledger = v.config().ledger;
    if (ledger.store !== 'postgres') throw new Error('not a postgres ledger');
    const surge = int(at(v.deployment.body, 'spec.strategy.rollingUpdate.maxSurge'), 'maxSurge');
    expect((maxReplicas + surge) * ledger.pool).toBeLessThanOrEqual(POSTGRES_CONNECTIONS);
  });
});
