/**
 * `x402-gateway init`: writes a commented config that validates, for one upstream, priced with
 * a catch-all route or, from an OpenAPI document, one route per operation. The I/O edge of
 * openapi-routes.ts and init-config.ts: reads or fetches the document, checks the text with the
 * gateway's own parser, and writes the file without replacing one unless told to.
 *
 * Part of the product (not src/tools/): it runs in the production image, so it uses only
 * runtime dependencies.
 */
import { access, readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import type { CliIo } from '../cli-io.js';
import { parseConfigText } from '../config/load.js';
import { DEFAULT_INIT_NETWORK, DEFAULT_INIT_PRICE, initConfigYaml, initNetwork, initNetworkNames, RPC_URL_VAR, SETTLER_KEY_VAR, type InitOpenApi, type InitSettlement } from './init-config.js';
import { openApiRoutes } from './openapi-routes.js';

/** How long fetching an OpenAPI document by URL may take. */
export const OPENAPI_FETCH_TIMEOUT_MS = 30_000;
/** Largest OpenAPI document read (file or URL); the biggest public ones are a few tens of MB. */
export const MAX_OPENAPI_BYTES = 64 * 1024 * 1024;
const DEFAULT_OUT = 'gateway.yaml';

/** Stand-ins for the variables the written file reads, so it can be checked before they exist. */
const CHECK_ENV = { [SETTLER_KEY_VAR]: `0x${'11'.repeat(32)}`, [RPC_URL_VAR]: 'http://127.0.0.1:8545' } as const;

export const INIT_HELP = `Usage: x402-gateway init --upstream URL --pay-to ADDRESS [--network NAME] [--price PRICE]
                         [--openapi FILE_OR_URL] [--facilitator URL] [--out FILE] [--force]

Writes a commented config that validates: the upstream, your address, one network, and routes.
Without --openapi: a free GET /health and one catch-all route at PRICE. With --openapi (an
OpenAPI 3.0 or 3.1 document, JSON or YAML, a file or an http(s) URL): one route per operation
at PRICE, most specific first. Edit the prices from there; gateway.example.yaml explains every key.

  --upstream URL         the API behind the gateway (its origin; paths are appended to it)
  --pay-to ADDRESS       the 0x address payments go to
  --network NAME         ${DEFAULT_INIT_NETWORK} (default), base-sepolia, or another chain with a built-in USDC:
${wrap(initNetworkNames().filter((name) => name !== 'base' && name !== 'base-sepolia'), ' '.repeat(25), 96)}
                         (or a chain's CAIP-2 id such as eip155:8453)
  --price PRICE          every route's price, e.g. '$0.01' (default '${DEFAULT_INIT_PRICE}'; quote the $)
  --openapi FILE_OR_URL  make the routes from this OpenAPI document
  --facilitator URL      settle through this x402 facilitator; without it, the gateway settles
                         with its own key and RPC: \${${SETTLER_KEY_VAR}} and \${${RPC_URL_VAR}} in the file
  --out FILE             where to write (default ${DEFAULT_OUT})
  --force                replace FILE if it exists`;

/** Words joined by ", " into indented lines of at most `width` characters. */
function wrap(words: readonly string[], indent: string, width: number): string {
  const lines: string[] = [];
  let line = indent;
  for (const [i, word] of words.entries()) {
    const piece = `${word}${i < words.length - 1 ? ',' : ''}`;
    if (line.length + piece.length + 1 > width && line !== indent) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${piece} `;
  }
  return [...lines, line.trimEnd()].join('\n');
}

/** Returns the exit code: 0 written, 1 a file or document problem, 2 bad arguments. */
export async function runInitCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        upstream: { type: 'string' },
        'pay-to': { type: 'string' },
        network: { type: 'string', default: DEFAULT_INIT_NETWORK },
        price: { type: 'string', default: DEFAULT_INIT_PRICE },
        openapi: { type: 'string' },
        facilitator: { type: 'string' },
        out: { type: 'string', short: 'o', default: DEFAULT_OUT },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    return usage(io, err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    io.out(INIT_HELP);
    return 0;
  }
  const { upstream, 'pay-to': payTo, facilitator, openapi, out, force } = values;
  if (upstream === undefined) return usage(io, 'no upstream: pass --upstream URL');
  if (!isHttpUrl(upstream)) return usage(io, `--upstream ${JSON.stringify(upstream)} is not an http(s) URL`);
  if (payTo === undefined) return usage(io, 'no address to pay: pass --pay-to ADDRESS');
  if (!/^0x[0-9a-fA-F]{40}$/.test(payTo)) return usage(io, `--pay-to ${JSON.stringify(payTo)} is not a 0x-prefixed 20-byte hex address`);
  const network = initNetwork(values.network);
  if (network === undefined) return usage(io, `--network ${JSON.stringify(values.network)} is not a chain with a built-in USDC (${initNetworkNames().join(', ')})`);
  if (values.price !== 'free' && !/^\$[0-9]+(\.[0-9]+)?$/.test(values.price)) {
    return usage(io, `--price ${JSON.stringify(values.price)} is not a dollar price like '$0.01' (quote it, or the shell eats the $)`);
  }
  if (facilitator !== undefined && !isHttpUrl(facilitator)) return usage(io, `--facilitator ${JSON.stringify(facilitator)} is not an http(s) URL`);

  // Checked first so a long fetch is not wasted; the write below (flag wx) is what guarantees it.
  if (!force && (await exists(out))) return refuseOverwrite(io, out);

  let api: InitOpenApi | undefined;
  if (openapi !== undefined) {
    const loaded = await loadOpenApi(openapi);
    if (typeof loaded === 'string') {
      io.err(`x402-gateway init: ${openapi}: ${loaded}`);
      return 1;
    }
    api = loaded;
  }

  const settlement: InitSettlement = facilitator === undefined ? { mode: 'local' } : { mode: 'facilitator', url: facilitator };
  const text = initConfigYaml({ upstream, payTo, network, price: values.price, settlement, fileName: basename(out), ...(api === undefined ? {} : { openapi: api }) });
  const checked = parseConfigText(text, CHECK_ENV);
  if (!checked.ok) {
    // Every part of the text is quoted or built to be valid, so what fails is an argument (a
    // price finer than the asset's smallest unit, say). Nothing is written.
    io.err(`x402-gateway init: these arguments make a config that is not valid, so nothing was written:`);
    for (const problem of checked.problems) io.err(`  ${problem}`);
    return 2;
  }
  try {
    await writeFile(out, text, { flag: force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return refuseOverwrite(io, out);
    io.err(`x402-gateway init: could not write ${out}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  for (const s of api?.skipped ?? []) io.err(`  not routed: ${s.what}: ${s.reason}`);
  if (api !== undefined && doublesBasePath(upstream, api.basePath)) {
    io.err(`  warning: --upstream ends with ${api.basePath}, which every route already starts with, so the upstream would get ${api.basePath}${api.basePath}/...: give its origin`);
  }
  for (const warning of checked.config.warnings) io.err(`  warning: ${warning}`);
  const routes = api === undefined ? '2 routes (GET /health free, * /** priced)' : `${api.routes.length} route${api.routes.length === 1 ? '' : 's'} from ${openapi}`;
  const settles = settlement.mode === 'facilitator' ? `settled by ${settlement.url}` : `settled with the gateway's key: set ${SETTLER_KEY_VAR} and ${RPC_URL_VAR} before start`;
  io.out(`wrote ${out}: ${routes}, ${network.name} (${network.id}), ${settles}`);
  return 0;
}

function usage(io: CliIo, message: string): number {
  io.err(`x402-gateway init: ${message}\n\n${INIT_HELP}`);
  return 2;
}

function refuseOverwrite(io: CliIo, out: string): number {
  io.err(`x402-gateway init: ${out} exists; pass --force to replace it`);
  return 1;
}

/** The gateway appends the whole request path (base path included) to the upstream's url. */
function doublesBasePath(upstream: string, basePath: string): boolean {
  const path = new URL(upstream).pathname.replace(/\/+$/, '');
  return basePath !== '' && path.toLowerCase().endsWith(basePath.toLowerCase());
}

function isHttpUrl(text: string): boolean {
  return URL.canParse(text) && /^https?:$/.test(new URL(text).protocol);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The document's routes, or why there are none. */
async function loadOpenApi(source: string): Promise<InitOpenApi | string> {
  const text = await readOpenApiText(source);
  if (text.ok === false) return text.problem;
  let doc: unknown;
  try {
    // YAML 1.2 is a superset of JSON, but JSON.parse is far faster on the big JSON documents.
    doc = /^\s*\{/.test(text.text) ? JSON.parse(text.text) : parseYaml(text.text, { maxAliasCount: 10_000 });
  } catch (err) {
    return `not JSON or YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
  }
  const result = openApiRoutes(doc);
  if (!result.ok) return result.problem;
  if (result.routes.length === 0) return `no operation that the gateway can route (${result.skipped.length} skipped)`;
  return { source, title: result.title, basePath: result.basePath, routes: result.routes, skipped: result.skipped };
}

async function readOpenApiText(source: string): Promise<{ readonly ok: true; readonly text: string } | { readonly ok: false; readonly problem: string }> {
  if (/^https?:\/\//i.test(source)) {
    let response: Response;
    try {
      response = await fetch(source, { signal: AbortSignal.timeout(OPENAPI_FETCH_TIMEOUT_MS), headers: { accept: 'application/json, application/yaml;q=0.9, */*;q=0.5' } });
    } catch (err) {
      return { ok: false, problem: `could not fetch: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}` };
    }
    if (!response.ok) {
      await response.body?.cancel();
      return { ok: false, problem: `fetch answered ${response.status} ${response.statusText}` };
    }
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_OPENAPI_BYTES) {
      await response.body?.cancel();
      return { ok: false, problem: `larger than ${MAX_OPENAPI_BYTES} bytes` };
    }
    const text = await response.text();
    return text.length > MAX_OPENAPI_BYTES ? { ok: false, problem: `larger than ${MAX_OPENAPI_BYTES} bytes` } : { ok: true, text };
  }
  try {
    const text = await readFile(source, 'utf8');
    return text.length > MAX_OPENAPI_BYTES ? { ok: false, problem: `larger than ${MAX_OPENAPI_BYTES} bytes` } : { ok: true, text };
  } catch (err) {
    return { ok: false, problem: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(err) };
  }
}
