/**
 * Coinbase CDP's side of its API authentication, for tests: API keys made as CDP issues them
 * (an Ed25519 secret as base64 of seed + public key, or a PEM EC P-256 key), and a facilitator
 * on 127.0.0.1 that checks each call's JWT the way CDP does and then forwards the call to a real
 * facilitator (`startTestFacilitator`, the official packages on anvil).
 *
 * What it checks, each failure a 401 `{ errorType: "unauthorized", errorMessage }`:
 * `Authorization: Bearer <JWT>`; a header `kid` naming a registered key, `typ: "JWT"`, the
 * key's `alg` and a `nonce` never seen before; the signature under that key's public key; `iss`
 * "cdp", `sub` the key id; `iat`, `nbf` and `exp` present, now within `nbf`..`exp` and the
 * token at most 120 s long; `uris` exactly `["METHOD host/path"]` of the request as received.
 * A key can be revoked (every call with it then refused), for some operations or all.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { decodeProtectedHeader, jwtVerify } from 'jose';

/** A CDP API key: what the operator configures (id, secret) and what CDP keeps (public key). */
export interface CdpTestKey {
  readonly id: string;
  readonly secret: string;
  readonly alg: 'EdDSA' | 'ES256';
  readonly publicKey: KeyObject;
}

/** An Ed25519 key, its secret base64 of the 32-byte seed and the 32-byte public key (CDP's form). */
export function ed25519CdpKey(id = `organizations/test-org/apiKeys/${randomId()}`): CdpTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const secret = Buffer.concat([Buffer.from(jwk.d ?? '', 'base64url'), Buffer.from(jwk.x ?? '', 'base64url')]).toString('base64');
  return { id, secret, alg: 'EdDSA', publicKey };
}

/** A P-256 key as PEM: SEC1 (`EC PRIVATE KEY`, as CDP's key files have it) or PKCS#8. */
export function p256CdpKey(id = `organizations/test-org/apiKeys/${randomId()}`, type: 'sec1' | 'pkcs8' = 'sec1'): CdpTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id, secret: String(privateKey.export({ format: 'pem', type })), alg: 'ES256', publicKey };
}

function randomId(): string {
  return crypto.randomUUID();
}

type Operation = 'verify' | 'settle' | 'supported';

/** One call the CDP facilitator received, and what it made of its token. */
export interface CdpRecordedCall {
  readonly method: string;
  readonly path: string;
  /** The bearer token, as received. */
  readonly token: string | undefined;
  /** Why it was refused; undefined: accepted and forwarded. */
  readonly refused: string | undefined;
  /** The status it answered. */
  readonly status: number;
}

export interface CdpFacilitator {
  /** Base URL with its path prefix, as the gateway's `settle.url`. */
  readonly url: string;
  readonly calls: readonly CdpRecordedCall[];
  /** From now on, refuse every call made with `keyId` (to `only` these operations, if given). */
  revoke(keyId: string, only?: readonly Operation[]): void;
  /** Undo every revocation. */
  restore(): void;
  close(): Promise<void>;
}

export interface StartCdpFacilitatorOptions {
  /** The real facilitator's base URL (its `/verify`, `/settle`, `/supported` at the root). */
  readonly forwardTo: string;
  /** Keys CDP has registered. */
  readonly keys: readonly CdpTestKey[];
  /** The path the API lives under, as CDP's `/platform/v2/x402`. */
  readonly basePath?: string;
}

const MAX_TOKEN_SECONDS = 120;

export async function startCdpFacilitator(options: StartCdpFacilitatorOptions): Promise<CdpFacilitator> {
  const basePath = options.basePath ?? '/platform/v2/x402';
  const keys = new Map(options.keys.map((k) => [k.id, k]));
  const seenNonces = new Set<string>();
  const revoked = new Map<string, readonly Operation[] | 'all'>();
  const calls: CdpRecordedCall[] = [];

  /** Why the call's token is not good, or undefined. */
  async function refusal(req: IncomingMessage, operation: Operation): Promise<string | undefined> {
    const auth = req.headers.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ')) return 'no bearer token';
    const token = auth.slice('Bearer '.length);
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return 'not a JWT';
    }
    const key = typeof header.kid === 'string' ? keys.get(header.kid) : undefined;
    if (!key) return 'unknown kid';
    if (header.typ !== 'JWT') return 'typ is not JWT';
    if (header.alg !== key.alg) return `alg ${String(header.alg)} is not the key's`;
    const nonce = header['nonce'];
    if (typeof nonce !== 'string' || nonce === '') return 'no nonce';
    let claims: Awaited<ReturnType<typeof jwtVerify>>['payload'];
    try {
      ({ payload: claims } = await jwtVerify(token, key.publicKey, {
        algorithms: [key.alg],
        issuer: 'cdp',
        subject: key.id,
        requiredClaims: ['iat', 'nbf', 'exp', 'uris'],
        maxTokenAge: MAX_TOKEN_SECONDS,
      }));
    } catch (err) {
      return `token does not verify: ${err instanceof Error ? err.message : String(err)}`;
    }
    if ((claims.exp ?? 0) - (claims.nbf ?? 0) > MAX_TOKEN_SECONDS) return 'token lives longer than 120 s';
    const expected = `${req.method ?? ''} ${req.headers.host ?? ''}${new URL(req.url ?? '/', 'http://x').pathname}`;
    const uris = claims['uris'];
    if (!Array.isArray(uris) || uris.length !== 1 || uris[0] !== expected) return `uris ${JSON.stringify(uris)} is not ["${expected}"]`;
    // Checked last, so a token refused for another reason does not burn its nonce.
    if (seenNonces.has(nonce)) return 'nonce used before';
    seenNonces.add(nonce);
    const gone = revoked.get(key.id);
    if (gone === 'all' || gone?.includes(operation)) return 'key revoked';
    return undefined;
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const token = req.headers.authorization?.replace(/^Bearer /, '');
        const rest = path.startsWith(`${basePath}/`) ? path.slice(basePath.length) : undefined;
        const operation = rest === '/verify' || rest === '/settle' || rest === '/supported' ? (rest.slice(1) as Operation) : undefined;
        if (operation === undefined) {
          calls.push({ method: req.method ?? '', path, token, refused: 'not found', status: 404 });
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"errorType":"not_found"}');
          return;
        }
        const refused = await refusal(req, operation);
        if (refused !== undefined) {
          calls.push({ method: req.method ?? '', path, token, refused, status: 401 });
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ errorType: 'unauthorized', errorMessage: 'Unauthorized' }));
          return;
        }
        const body = Buffer.concat(chunks);
        const forwarded = await fetch(`${options.forwardTo}${rest}`, {
          method: req.method ?? 'GET',
          headers: { 'content-type': 'application/json' },
          ...(body.length > 0 ? { body } : {}),
        });
        const text = await forwarded.text();
        calls.push({ method: req.method ?? '', path, token, refused: undefined, status: forwarded.status });
        res.writeHead(forwarded.status, { 'content-type': 'application/json' }).end(text);
      })().catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return {
    url: `http://127.0.0.1:${address.port}${basePath}`,
    calls,
    revoke: (keyId, only) => void revoked.set(keyId, only ?? 'all'),
    restore: () => revoked.clear(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
