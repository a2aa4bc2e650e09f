/**
 * The demo's gateway config, written as YAML text so the demo goes through the same parser and
 * validation as an operator's file (and the file it writes is a working starting point). Pure.
 */
import { yamlString } from '../../config/yaml-string.js';

/** One priced (or free) endpoint of the demo upstream, as routed by the gateway. */
export interface DemoRoute {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** As written in the config: a dollar price or `free`. */
  readonly price: string;
  readonly description: string;
  readonly mimeType: string;
  /** Left to the default (`after`) when absent. */
  readonly settlement?: 'before' | 'after';
}

export const DEMO_ROUTES: readonly DemoRoute[] = [
  { method: 'GET', path: '/v1/weather', price: '$0.01', settlement: 'after', description: 'Current weather for ?city=', mimeType: 'application/json' },
  { method: 'POST', path: '/v1/echo', price: '$0.02', description: 'Echoes a JSON body', mimeType: 'application/json' },
  { method: 'GET', path: '/v1/stream', price: '$0.005', description: 'A few server-sent events', mimeType: 'text/event-stream' },
  { method: 'GET', path: '/health', price: 'free', description: 'Upstream health', mimeType: 'application/json' },
];

export interface DemoConfigParams {
  readonly rpcUrl: string;
  /** The gateway's own key: submits transferWithAuthorization and pays the gas. */
  readonly settlerKey: `0x${string}`;
  readonly payTo: `0x${string}`;
  readonly upstreamUrl: string;
  readonly host: string;
  readonly port: number;
  readonly adminPort: number;
  /** Absolute, so `receipts --config` finds the same file from any directory. */
  readonly ledgerPath: string;
}

/** The complete config file for a demo run. */
export function demoConfigYaml(p: DemoConfigParams): string {
  const routes = DEMO_ROUTES.map((r) =>
    [
      `  - match: ${yamlString(`${r.method} ${r.path}`)}`,
      `    price: ${yamlString(r.price)}`,
      ...(r.settlement === undefined ? [] : [`    settlement: ${r.settlement}`]),
      `    description: ${yamlString(r.description)}`,
      `    mimeType: ${yamlString(r.mimeType)}`,
    ].join('\n'),
  );
  return `# Written by \`x402-gateway demo\` for one run: a local anvil chain posing as Base (chain id 8453),
# with a test USDC at Base's USDC address. Every key is explained in gateway.example.yaml.
# The private key below is anvil's public dev key #0: never use it on a real network.

listen: { host: ${yamlString(p.host)}, port: ${p.port} }
admin: { host: ${yamlString(p.host)}, port: ${p.adminPort} }

payTo: ${yamlString(p.payTo)}

networks:
  base:
    network: "eip155:8453"
    rpc: [${yamlString(p.rpcUrl)}]
    verify: local
    settle: { mode: local, privateKey: ${yamlString(p.settlerKey)} }

upstreams:
  demo: { url: ${yamlString(p.upstreamUrl)} }

defaults:
  accepts: [usdc@base]
  upstream: demo

routes:
${routes.join('\n')}

ledger: { path: ${yamlString(p.ledgerPath)} }

log: { level: info }
`;
}
