/**
 * The config file `x402-gateway init` writes: YAML text with a comment on each key, from the
 * command's options and, with --openapi, the routes of the document's operations. Pure: the
 * command (init-command.ts) reads the document, checks this text with the gateway's own parser
 * and writes it.
 */
import { KNOWN_CHAINS } from '../config/known-networks.js';
import { yamlCommentText, yamlString } from '../config/yaml-string.js';
import type { OpenApiRoute, SkippedOperation } from './openapi-routes.js';

/** The network a new config takes payments on unless --network names another. */
export const DEFAULT_INIT_NETWORK = 'base';
/** The price of every route init writes; the operator edits each from there. */
export const DEFAULT_INIT_PRICE = '$0.001';
/** The environment variables the written file reads the settler's key and RPC endpoint from. */
export const SETTLER_KEY_VAR = 'SETTLER_KEY';
export const RPC_URL_VAR = 'BASE_RPC_URL';
/**
 * The schema as an npm install has it, relative to a config file beside node_modules/. An editor
 * that finds no file there just offers no completion; the gateway ignores the line.
 */
export const INSTALLED_SCHEMA_PATH = './node_modules/x402-gateway/config/gateway.schema.json';

/** A chain init knows by name: the config's network key and its CAIP-2 id. */
export interface InitNetwork {
  readonly name: string;
  readonly id: string;
}

/**
 * `base`, `base-sepolia`, ... (the x402 names of the chains whose USDC the gateway knows), or
 * such a chain's CAIP-2 id (`eip155:8453`). Undefined for anything else: a chain without a
 * built-in USDC needs an `assets` entry, which init does not guess.
 */
export function initNetwork(arg: string): InitNetwork | undefined {
  for (const [chainId, chain] of KNOWN_CHAINS) {
    if (chain.usdc === undefined) continue;
    const id = `eip155:${chainId}`;
    if (arg === chain.v1Name || arg === id) return { name: chain.v1Name ?? `eip155-${chainId}`, id };
  }
  return undefined;
}

/** The names initNetwork takes, for the usage text. */
export function initNetworkNames(): string[] {
  return [...KNOWN_CHAINS.values()].flatMap((c) => (c.usdc !== undefined && c.v1Name !== undefined ? [c.v1Name] : []));
}

/** Who settles: an x402 facilitator, or the gateway's own key through an RPC endpoint. */
export type InitSettlement = { readonly mode: 'facilitator'; readonly url: string } | { readonly mode: 'local' };

/** Where the routes came from, with --openapi. */
export interface InitOpenApi {
  /** The file or URL, as given. */
  readonly source: string;
  readonly title: string;
  readonly basePath: string;
  readonly routes: readonly OpenApiRoute[];
  readonly skipped: readonly SkippedOperation[];
}

export interface InitConfigOptions {
  readonly upstream: string;
  readonly payTo: string;
  readonly network: InitNetwork;
  readonly price: string;
  readonly settlement: InitSettlement;
  /** The file's name, for the commands in its header. */
  readonly fileName: string;
  readonly openapi?: InitOpenApi;
}

const UPSTREAM_NAME = 'api';

/** The whole file. */
export function initConfigYaml(o: InitConfigOptions): string {
  const asset = `usdc@${o.network.name}`;
  const file = yamlCommentText(o.fileName);
  return `# yaml-language-server: $schema=${INSTALLED_SCHEMA_PATH}
# The line above gives editors with the YAML language server (VS Code's YAML extension, yamlls,
# JetBrains) completion and checks. Its path is relative to this file and right beside the
# node_modules/ of \`npm install x402-gateway\`; from a checkout it is ./config/gateway.schema.json.
#
# Written by \`x402-gateway init\`. gateway.example.yaml (in the package) explains every key and
# its default; only what this gateway needs is here.
#   Check it:  x402-gateway validate --config ${file}
#   Run it:    x402-gateway start --config ${file}
# \`\${VAR}\` is replaced by the environment variable VAR when the file is loaded (unset: an error).

# Public listener (callers connect here) and admin listener (/healthz, /readyz: keep it private).
listen: { host: 0.0.0.0, port: 8402 }
admin: { host: 127.0.0.1, port: 9402 }

# Where payments go: your address on ${o.network.name}.
payTo: ${yamlString(o.payTo)}

# The chain payments are taken on. "${o.network.name}" is the name asset ids use (${asset}).
networks:
  ${o.network.name}:
    network: ${yamlString(o.network.id)}
${settlementYaml(o.settlement)}

# The API behind the gateway. A request's path is appended to this url as it is.
upstreams:
  ${UPSTREAM_NAME}: { url: ${yamlString(o.upstream)} }

defaults:
  # Dollar prices are charged in USDC on ${o.network.name}.
  accepts: [${asset}]
  # Routes that name no upstream go here.
  upstream: ${UPSTREAM_NAME}
  # Requests no route matches get 404, so billing fails closed (free: forwarded unpaid).
  unmatched: deny

${o.openapi === undefined ? catchAllRoutes(o.price) : openApiRoutesYaml(o.openapi, o.price)}

# Nonce reservations, settlements and receipts: a SQLite file, relative to where the gateway runs.
# Several replicas share PostgreSQL instead: { store: postgres, url: "\${DATABASE_URL}" }.
ledger: { path: ./x402-gateway.db }
`;
}

/** The local settler's key and RPC are env references, written as such (yamlString would escape them). */
function settlementYaml(s: InitSettlement): string {
  switch (s.mode) {
    case 'facilitator':
      return `    # An x402 facilitator verifies and settles each payment; the gateway holds no key.
    settle: { mode: facilitator, url: ${yamlString(s.url)} }`;
    case 'local':
      return `    # JSON-RPC endpoint(s) the gateway verifies payments and settles through, tried in order.
    rpc: ["\${${RPC_URL_VAR}}"]
    # The gateway's own key submits each settlement (transferWithAuthorization) and pays its gas:
    # fund its address with a little of the chain's native token. Keep the key out of this file.
    settle: { mode: local, privateKey: "\${${SETTLER_KEY_VAR}}" }`;
  }
}

const ROUTES_HEAD = `# Ordered: the first match wins. match: "METHOD /path" (method * for any; GET also takes HEAD),
# path segments literal (case-insensitive), :param or * (one segment), ** (the rest).
# price: "$0.01" (in each accepted asset), free, or { amount: "<atomic units>", asset: <id> }.
routes:`;

function catchAllRoutes(price: string): string {
  return `${ROUTES_HEAD}
  # The upstream's health check, if it has one, passes unpaid.
  - match: "GET /health"
    price: free
    description: "Health check"
  # Everything else, at one price. Put routes with their own price above this one.
  - match: "* /**"
    price: ${yamlString(price)}
    description: "API request"`;
}

function openApiRoutesYaml(api: InitOpenApi, price: string): string {
  const title = api.title === '' ? '' : ` (${yamlCommentText(api.title)})`;
  const base =
    api.basePath === ''
      ? []
      : [
          `# Every path starts with ${yamlCommentText(api.basePath)}, the base path of the document's servers[0].url; the upstream`,
          `# url above is then the origin without it (the gateway appends the whole path).`,
        ];
  const skipped = api.skipped.map((s) => `# Not routed: ${yamlCommentText(s.what)}: ${yamlCommentText(s.reason)}.`);
  const routes = api.routes.map((r) =>
    [
      ...(r.wildcarded ? [`  # ${yamlCommentText(`${r.method} ${r.template}`)}: * stands for a segment that mixes text and a parameter.`] : []),
      `  - match: ${yamlString(`${r.method} ${r.pattern}`)}`,
      `    price: ${yamlString(price)}`,
      `    description: ${yamlString(r.description)}`,
    ].join('\n'),
  );
  return [
    `# One route per operation of the OpenAPI document${title},`,
    `#   ${yamlCommentText(api.source)}`,
    `# ${api.routes.length} in all, each at the same price: edit each from here. More specific paths`,
    `# come first (literal segments before parameters, longer before shorter), so none hides another.`,
    ...base,
    ...skipped,
    ROUTES_HEAD,
    ...routes,
  ].join('\n');
}
