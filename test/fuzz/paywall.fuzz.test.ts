/**
 * The whole paywall, fuzzed through a running gateway on the dev chain (anvil, the test token at
 * Base's USDC address, local settlement). Thousands of payment headers, eight at a time:
 *
 * - garbage: any header-safe text, base64 of arbitrary bytes and JSON, in either payment header,
 *   both, or repeated; and stray proof headers;
 * - structure-aware mutations (test/helpers/payload-mutations.ts) of two payments the official
 *   clients signed and that were settled before the snapshot;
 * - re-signed payments: a fresh authorization signed by the payer's key (so the signature is
 *   valid) with at least one term wrong: payee, value, expiry, start, network, asset, EIP-712
 *   domain, signer, an unfunded payer, `accepted` terms, v1 and v2 fields mixed;
 * - replays of the two settled payments, also concurrently, on every route.
 *
 * Every answer is a 400 with a catalogued code, a 402 with a catalogued reason, or a 429; never
 * a 5xx, never a pass. The upstream sees none of them and no money moves: the payer's and the
 * payee's balances on chain end as they were at the snapshot.
 */
import type { PaymentRequired, PaymentRequirements } from '@x402/core/types';
import { authorizationTypes } from '@x402/evm';
import fc from 'fast-check';
import { getAddress, type Address, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPaymentHeader } from 'x402/client';
import { PaymentRequirementsSchema } from 'x402/types';
import { DEFAULT_MAX_HEADER_BYTES } from '../../src/config/schema.js';
import { ERROR_CODES } from '../../src/errors.js';
import { PAYMENT_REQUIRED_MESSAGE } from '../../src/http/replies.js';
import { MONEY_STATUSES } from '../../src/payments/ports.js';
import { GATEWAY_REASON, REASON, REASON_CATALOGUE } from '../../src/protocol/reasons.js';
import type { RunningGateway } from '../../src/server.js';
import { ANVIL_DEV_KEYS } from '../../src/tools/devchain/anvil.js';
import { BASE_USDC } from '../../src/tools/devchain/token.js';
import { challengeOf, localSettlementBase, PAYEE, PAYER, PAYER_KEY, startChainWorld, UNFUNDED_KEY, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { fuzzParams, fuzzTimeoutMs } from '../helpers/fuzz-params.js';
import { gatewayYamlHead, startGateway } from '../helpers/gateway.js';
import { send, type RawResponse } from '../helpers/http.js';
import { anyJson, encodeMutated, encoding, mutate, mutation, type Encoding, type Json, type JsonObject, type Mutation } from '../helpers/payload-mutations.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/** Requests in flight at once. */
const CONCURRENCY = 8;
/** Batches of CONCURRENCY requests in a default run. */
const BATCHES = 625;

/** Signs valid signatures for the wrong address: not the payer. */
const STRANGER_KEY = ANVIL_DEV_KEYS[6];
const UNFUNDED = privateKeyToAccount(UNFUNDED_KEY).address;

type RouteName = 'weather' | 'echo' | 'before';

interface RouteSpec {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly price: bigint;
}

const ROUTES: Readonly<Record<RouteName, RouteSpec>> = {
  weather: { method: 'GET', path: '/weather', price: 10_000n },
  echo: { method: 'POST', path: '/v1/echo', price: 10_000n },
  before: { method: 'GET', path: '/before/report', price: 20_000n },
};
const ROUTE_NAMES = Object.keys(ROUTES) as RouteName[];

function gatewayYaml(rpcUrl: string, upstreamUrl: string): string {
  return `${gatewayYamlHead({ payTo: PAYEE, network: localSettlementBase(rpcUrl) })}
upstreams:
  api: { url: "${upstreamUrl}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
  - { match: "POST /v1/echo", price: "$0.01" }
  - { match: "GET /before/report", price: "$0.02", settlement: before }
# Generous: a fuzz run is one client and one payer failing thousands of times (a 429 is allowed,
# but would hide what the payments behind it would have met).
limits:
  unchargedForwards: { max: 1000000, perSeconds: 1 }
  failedPayments:
    perClient: { max: 1000000, perSeconds: 1 }
    perPayer: { max: 1000000, perSeconds: 1 }
`;
}

// --- what is sent ---

/** A header value Node's client sends as it is: tab, printable ASCII and latin1. */
const headerText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'\t !"#$%&\'()*+,-./0123456789:;<=>?@AZaz[\\]^_`{|}~éÿ\u0080'), maxLength: 120 }),
  fc.base64String({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('base64')),
  anyJson.map((j) => Buffer.from(JSON.stringify(j), 'utf8').toString('base64')),
  // Long, yet three of them stay under node's 16 KiB limit on a request head (past it: a bare 431).
  fc.constantFrom('', ' ', 'e30=', 'W10=', 'bnVsbA==', 'eyJ4NDAyVmVyc2lvbiI6Mn0=', 'eyJ4NDAyVmVyc2lvbiI6MX0=', 'A'.repeat(4_800)),
);

const PAYMENT_HEADERS = ['payment-signature', 'x-payment'] as const;
type PaymentHeader = (typeof PAYMENT_HEADERS)[number];

/** The terms a re-signed authorization gets wrong; at least one per payment. */
type Wrong =
  | { readonly w: 'to'; readonly address: Hex }
  | { readonly w: 'value'; readonly value: bigint }
  | { readonly w: 'expired'; readonly secondsLeft: number }
  | { readonly w: 'notYet'; readonly secondsAhead: number }
  | { readonly w: 'network'; readonly name: string }
  | { readonly w: 'asset'; readonly address: Hex; readonly signForIt: boolean }
  | { readonly w: 'domain'; readonly field: 'chainId' | 'name' | 'version' }
  | { readonly w: 'signer' }
  | { readonly w: 'unfunded' }
  | { readonly w: 'acceptedAmount'; readonly value: bigint }
  | { readonly w: 'acceptedPayTo'; readonly address: Hex }
  | { readonly w: 'maxTimeout'; readonly seconds: number }
  | { readonly w: 'mixed' };

type Spec = { readonly route: RouteName; readonly query: string } & (
  | { readonly kind: 'garbage'; readonly headers: readonly (readonly [PaymentHeader | 'x-payment-proof' | 'x-payment-proof-signature', string])[] }
  | { readonly kind: 'mutated'; readonly base: 1 | 2; readonly mutations: readonly Mutation[]; readonly encoding: Encoding; readonly header: PaymentHeader; readonly junk: string | undefined }
  | { readonly kind: 'resigned'; readonly version: 1 | 2; readonly wrong: readonly Wrong[]; readonly header: 'own' | 'other'; readonly nonce: Hex; readonly upperHex: boolean }
  | { readonly kind: 'replay'; readonly which: 1 | 2; readonly header: 'own' | 'other'; readonly upperHex: boolean }
);

const hexOf = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b): Hex => `0x${Buffer.from(b).toString('hex')}`);
const otherAddress = (...not: string[]) =>
  fc.oneof(hexOf(20), fc.constantFrom<Hex>(PAYER, UNFUNDED, BASE_USDC, '0x0000000000000000000000000000000000000000')).filter((a) => !not.some((n) => n.toLowerCase() === a.toLowerCase()));
const anyValue = fc.oneof(fc.constantFrom(0n, 1n, 9_999n, 10_000n, 10_001n, 19_999n, 20_000n, 20_001n, 2n ** 256n - 1n), fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }));

function wrongFor(version: 1 | 2): fc.Arbitrary<Wrong> {
  const both: fc.Arbitrary<Wrong>[] = [
    fc.record({ w: fc.constant('to' as const), address: otherAddress(PAYEE) }),
    fc.record({ w: fc.constant('value' as const), value: anyValue }),
    fc.record({ w: fc.constant('expired' as const), secondsLeft: fc.integer({ min: -10_000_000, max: 5 }) }),
    fc.record({ w: fc.constant('notYet' as const), secondsAhead: fc.integer({ min: 30, max: 10_000_000 }) }),
    fc.record({
      w: fc.constant('network' as const),
      name: version === 2 ? fc.constantFrom('eip155:84532', 'eip155:1', 'eip155:08453', 'base', 'solana:mainnet') : fc.constantFrom('base-sepolia', 'ethereum', 'eip155:8453', 'Base'),
    }),
    // A v1 payment names no asset: only its signature can be for another token.
    fc.record({ w: fc.constant('asset' as const), address: otherAddress(BASE_USDC), signForIt: version === 2 ? fc.boolean() : fc.constant(true) }),
    fc.record({ w: fc.constant('domain' as const), field: fc.constantFrom('chainId' as const, 'name' as const, 'version' as const) }),
    fc.constant({ w: 'signer' as const }),
    fc.constant({ w: 'unfunded' as const }),
    fc.constant({ w: 'mixed' as const }),
  ];
  const v2Only: fc.Arbitrary<Wrong>[] = [
    fc.record({ w: fc.constant('acceptedAmount' as const), value: anyValue }),
    fc.record({ w: fc.constant('acceptedPayTo' as const), address: otherAddress(PAYEE) }),
    fc.record({ w: fc.constant('maxTimeout' as const), seconds: fc.integer({ min: 1, max: 100_000 }) }),
  ];
  return fc.oneof(...both, ...(version === 2 ? v2Only : []));
}

const queryArb = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('', '', '?city=Paris', '?a=1&a=2') }, fc.constantFrom('?_method=GET', '?_METHOD=post'));

const specArb: fc.Arbitrary<Spec> = fc
  .record({ route: fc.constantFrom(...ROUTE_NAMES), query: queryArb })
  .chain(({ route, query }) =>
    fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          route: fc.constant(route),
          query: fc.constant(query),
          kind: fc.constant('garbage' as const),
          headers: fc.array(fc.tuple(fc.constantFrom(...PAYMENT_HEADERS, ...PAYMENT_HEADERS, 'x-payment-proof' as const, 'x-payment-proof-signature' as const), headerText), { minLength: 1, maxLength: 3 }),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          route: fc.constant(route),
          query: fc.constant(query),
          kind: fc.constant('mutated' as const),
          base: fc.constantFrom<1 | 2>(1, 2),
          mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
          encoding,
          header: fc.constantFrom(...PAYMENT_HEADERS),
          junk: fc.option(headerText, { nil: undefined }),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.constantFrom<1 | 2>(1, 2).chain((version) =>
          fc.record({
            route: fc.constant(route),
            query: fc.constant(query),
            kind: fc.constant('resigned' as const),
            version: fc.constant(version),
            wrong: fc.array(wrongFor(version), { minLength: 1, maxLength: 3 }),
            header: fc.constantFrom('own' as const, 'own' as const, 'other' as const),
            nonce: hexOf(32),
            upperHex: fc.boolean(),
          }),
        ),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          route: fc.constant(route),
          query: fc.constant(query),
          kind: fc.constant('replay' as const),
          which: fc.constantFrom<1 | 2>(1, 2),
          header: fc.constantFrom('own' as const, 'own' as const, 'other' as const),
          upperHex: fc.boolean(),
        }),
      },
    ),
  );

// --- the world ---

let world: ChainWorld;
let upstream: TestUpstream;
let gw: RunningGateway;

/** The v2 requirement and the v1 requirement each route's challenge offers. */
const offers = new Map<RouteName, { readonly v2: PaymentRequired; readonly v1: Record<string, unknown> }>();
/** The two payments settled before the snapshot: their JSON and their header text. */
const spent = new Map<1 | 2, { readonly json: JsonObject; readonly header: string }>();
let snapshot: { readonly payer: bigint; readonly payee: bigint; readonly unfunded: bigint; readonly seen: number; readonly time: number };

const payer = privateKeyToAccount(PAYER_KEY);

async function v1Requirement(route: RouteName): Promise<Record<string, unknown>> {
  const spec = ROUTES[route];
  const res = await send(gw.url, spec.method, spec.path, spec.method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {});
  const body = res.json() as { accepts: Record<string, unknown>[] };
  const first = body.accepts[0];
  if (!first) throw new Error(`no v1 requirement for ${route}`);
  return first;
}

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  gw = await startGateway(gatewayYaml(world.chain.rpcUrl, upstream.url));
  const http = v2HttpClient();
  for (const route of ROUTE_NAMES) {
    const spec = ROUTES[route];
    const init: RequestInit = spec.method === 'POST' ? { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } } : {};
    offers.set(route, { v2: await challengeOf(http, `${gw.url}${spec.path}`, init), v1: await v1Requirement(route) });
  }

  // One payment of each version, paid and delivered in full before the snapshot.
  const v2 = http.encodePaymentSignatureHeader(await http.createPaymentPayload(offers.get('weather')?.v2 as PaymentRequired))['PAYMENT-SIGNATURE'] ?? '';
  const v1 = await createPaymentHeader(payer, 1, PaymentRequirementsSchema.parse(offers.get('before')?.v1));
  expect((await send(gw.url, 'GET', '/weather', { headers: { 'payment-signature': v2 } })).status).toBe(200);
  expect((await send(gw.url, 'GET', '/before/report', { headers: { 'x-payment': v1 } })).status).toBe(200);
  for (const [version, header] of [[2, v2], [1, v1]] as const) {
    spent.set(version, { header, json: JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as JsonObject });
  }
  // Once the ledger knows both answers were delivered, a replay is refused, not re-delivered.
  await waitFor(async () => (await send(gw.url, 'GET', '/weather', { headers: { 'payment-signature': v2 } })).status === 402);
  await waitFor(async () => (await send(gw.url, 'GET', '/before/report', { headers: { 'x-payment': v1 } })).status === 402);

  const balances = await world.balances();
  snapshot = { ...balances, unfunded: await world.balance(UNFUNDED), seen: upstream.seen.length, time: Date.now() };
}, 120_000);

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await world?.stop();
});

// --- building a request ---

/** The same JSON with every hex string's digits in upper case: the same values. */
function upperHexOf(value: Json): Json {
  if (typeof value === 'string') return /^0x[0-9a-fA-F]+$/.test(value) ? `0x${value.slice(2).toUpperCase()}` : value;
  if (Array.isArray(value)) return value.map(upperHexOf);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, upperHexOf(v)]));
  return value;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const otherHeader = (h: PaymentHeader): PaymentHeader => (h === 'payment-signature' ? 'x-payment' : 'payment-signature');

/** A fresh authorization for `route`, signed with a valid signature, with every `wrong` term applied. */
async function resigned(spec: Extract<Spec, { kind: 'resigned' }>): Promise<Record<string, string>> {
  const route = ROUTES[spec.route];
  const offer = offers.get(spec.route);
  if (!offer) throw new Error('no offer');
  const requirement = offer.v2.accepts[0] as PaymentRequirements;
  const accepted: Record<string, unknown> = { ...requirement };
  let v1Network = 'base';
  const now = Math.floor(Date.now() / 1000);
  const auth = { from: PAYER as Address, to: getAddress(requirement.payTo), value: route.price, validAfter: BigInt(now - 600), validBefore: BigInt(now + 300), nonce: spec.nonce };
  const domain = { name: String(requirement.extra?.['name']), version: String(requirement.extra?.['version']), chainId: 8453, verifyingContract: getAddress(requirement.asset) };
  let signer = payer;
  let mixed = false;
  for (const wrong of spec.wrong) {
    switch (wrong.w) {
      case 'to':
        auth.to = getAddress(wrong.address);
        break;
      case 'value':
        auth.value = wrong.value === route.price ? route.price + 1n : wrong.value;
        break;
      case 'expired':
        auth.validBefore = BigInt(Math.max(0, now + wrong.secondsLeft));
        break;
      case 'notYet':
        auth.validAfter = BigInt(now + wrong.secondsAhead);
        break;
      case 'network':
        if (spec.version === 2) accepted['network'] = wrong.name;
        else v1Network = wrong.name;
        break;
      case 'asset':
        accepted['asset'] = getAddress(wrong.address);
        if (wrong.signForIt) domain.verifyingContract = getAddress(wrong.address);
        break;
      case 'domain':
        if (wrong.field === 'chainId') domain.chainId = 84532;
        else if (wrong.field === 'name') domain.name = 'USDC';
        else domain.version = '1';
        break;
      case 'signer':
        signer = privateKeyToAccount(STRANGER_KEY);
        break;
      case 'unfunded':
        signer = privateKeyToAccount(UNFUNDED_KEY);
        auth.from = UNFUNDED;
        break;
      case 'acceptedAmount': {
        const value = wrong.value === route.price ? route.price + 1n : wrong.value;
        accepted['amount'] = value.toString();
        auth.value = value;
        break;
      }
      case 'acceptedPayTo':
        accepted['payTo'] = getAddress(wrong.address);
        auth.to = getAddress(wrong.address);
        break;
      case 'maxTimeout':
        accepted['maxTimeoutSeconds'] = wrong.seconds === requirement.maxTimeoutSeconds ? wrong.seconds + 1 : wrong.seconds;
        break;
      case 'mixed':
        mixed = true;
        break;
    }
  }
  const signature = await signer.signTypedData({ domain, types: authorizationTypes, primaryType: 'TransferWithAuthorization', message: auth });
  const payload = {
    signature,
    authorization: { ...auth, value: auth.value.toString(), validAfter: auth.validAfter.toString(), validBefore: auth.validBefore.toString() },
  };
  let doc: Json =
    spec.version === 2
      ? { x402Version: 2, resource: offer.v2.resource as unknown as Json, accepted: accepted as Json, payload, ...(mixed ? { scheme: 'exact', network: 'base' } : {}) }
      : { x402Version: 1, scheme: 'exact', network: v1Network, payload, ...(mixed ? { accepted: accepted as Json } : {}) };
  if (spec.upperHex) doc = upperHexOf(doc);
  const own: PaymentHeader = spec.version === 2 ? 'payment-signature' : 'x-payment';
  return { [spec.header === 'own' ? own : otherHeader(own)]: b64(doc) };
}

async function headersOf(spec: Spec): Promise<Record<string, string | string[]>> {
  switch (spec.kind) {
    case 'garbage': {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of spec.headers) {
        const prior = headers[name];
        // A header given twice is sent twice (two lines).
        headers[name] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
      }
      return headers;
    }
    case 'mutated': {
      const base = spent.get(spec.base);
      if (!base) throw new Error('no spent payment');
      const doc = structuredClone(base.json);
      for (const m of spec.mutations) mutate(doc, m);
      const text = encodeMutated(doc, spec.encoding);
      return spec.junk === undefined ? { [spec.header]: text } : { [spec.header]: text, [otherHeader(spec.header)]: spec.junk };
    }
    case 'resigned':
      return resigned(spec);
    case 'replay': {
      const base = spent.get(spec.which);
      if (!base) throw new Error('no spent payment');
      const text = spec.upperHex ? b64(upperHexOf(base.json)) : base.header;
      const own: PaymentHeader = spec.which === 2 ? 'payment-signature' : 'x-payment';
      return { [spec.header === 'own' ? own : otherHeader(own)]: text };
    }
  }
}

/**
 * What a header line can carry: Node's client refuses other characters (a mutated encoding may put
 * a newline in the base64), so they travel as spaces, which the decoder refuses just the same.
 */
const lineSafe = (value: string) => value.replace(/[^\t\x20-\x7e\x80-\xff]/g, ' ');

/**
 * Bytes of payment headers a request may carry: node answers a head over `listen.maxHeaderBytes`
 * with a bare 431 before the gateway sees it (listener.ts), so headers past this budget (a long
 * mutation beside long junk) are left off, and a first one longer than all of it is cut.
 */
const HEADER_BUDGET_BYTES = DEFAULT_MAX_HEADER_BYTES - 1024;

function withinBudget(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  let used = 0;
  for (const [name, value] of Object.entries(headers)) {
    for (const line of Array.isArray(value) ? value : [value]) {
      const size = name.length + line.length + 4;
      if (used > 0 && used + size > HEADER_BUDGET_BYTES) continue;
      // The first is cut to fit: what is left is no payment either.
      const fitted = size > HEADER_BUDGET_BYTES ? line.slice(0, HEADER_BUDGET_BYTES - name.length - 4) : line;
      used += name.length + fitted.length + 4;
      const prior = kept[name];
      kept[name] = prior === undefined ? fitted : [...(Array.isArray(prior) ? prior : [prior]), fitted];
    }
  }
  return kept;
}

async function sendSpec(spec: Spec): Promise<RawResponse> {
  const route = ROUTES[spec.route];
  const payment = withinBudget(Object.fromEntries(Object.entries(await headersOf(spec)).map(([k, v]) => [k, Array.isArray(v) ? v.map(lineSafe) : lineSafe(v)])));
  const headers = route.method === 'POST' ? { ...payment, 'content-type': 'application/json' } : payment;
  // `send` types its headers as plain strings; node's client takes an array as repeated lines.
  return send(gw.url, route.method, route.path + spec.query, { headers: headers as Record<string, string>, ...(route.method === 'POST' ? { body: '{"fuzz":true}' } : {}) });
}

// --- what must come back ---

const CATALOGUED_REASONS: ReadonlySet<string> = new Set(Object.keys(REASON_CATALOGUE));

function decodeB64Json(value: string | string[] | undefined): Record<string, unknown> | undefined {
  if (typeof value !== 'string') return undefined;
  return JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as Record<string, unknown>;
}

const describeSpec = (spec: Spec) => JSON.stringify(spec, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 200 ? `${v.slice(0, 40)}…(${v.length})` : v));

/** True when the request carried a payment or a proof: its 402 must say why it was refused. */
const presentsSomething = (spec: Spec) => spec.kind !== 'garbage' || spec.headers.some(([name]) => name !== 'x-payment-proof-signature');

/** The answer's verdict, as `status code-or-reason`, after checking it is an allowed one. */
function verdictOf(res: RawResponse, spec: Spec): string {
  const what = `${describeSpec(spec)}\n-> ${res.status} ${res.text().slice(0, 300)}`;
  expect([400, 402, 429], what).toContain(res.status);
  if (res.status !== 402) {
    const code = (res.json() as { code?: string }).code ?? '';
    expect(Object.hasOwn(ERROR_CODES, code) && ERROR_CODES[code as keyof typeof ERROR_CODES].status === res.status, what).toBe(true);
    return `${res.status} ${code}`;
  }
  const body = res.json() as { error?: unknown };
  const reason = String(body.error);
  // A stray proof signature alone is no payment: the plain challenge, as to any unpaid request.
  const allowed = CATALOGUED_REASONS.has(reason) || (!presentsSomething(spec) && reason === PAYMENT_REQUIRED_MESSAGE);
  expect(allowed, what).toBe(true);
  // The v2 challenge header names the same reason; a failed-settlement receipt would be a charge attempt.
  const challenge = decodeB64Json(res.headers['payment-required']);
  if (challenge !== undefined) expect(challenge['error']).toBe(reason);
  for (const name of ['payment-response', 'x-payment-response']) {
    const receipt = decodeB64Json(res.headers[name]);
    if (receipt !== undefined) expect({ success: receipt['success'], reason: CATALOGUED_REASONS.has(String(receipt['errorReason'])) }).toEqual({ success: false, reason: true });
  }
  return `402 ${reason}`;
}

describe('the paywall, fuzzed on the dev chain', () => {
  it(
    'garbage, mutated, re-signed and replayed payments: 400/402/429 with a stable code, never forwarded, no money moved',
    async () => {
      const verdicts = new Map<string, number>();
      let requests = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(specArb, { minLength: CONCURRENCY, maxLength: CONCURRENCY }), async (batch) => {
          const seenBefore = upstream.seen.length;
          const answers = await Promise.all(batch.map(sendSpec));
          requests += answers.length;
          for (const [i, res] of answers.entries()) {
            const verdict = verdictOf(res, batch[i] as Spec);
            verdicts.set(verdict, (verdicts.get(verdict) ?? 0) + 1);
          }
          const reached = upstream.seen.slice(seenBefore).map((r) => ({ method: r.method, url: r.url, headers: r.headers }));
          expect(reached, `the upstream saw unpaid requests from ${batch.map(describeSpec).join('\n')}`).toEqual([]);
        }),
        fuzzParams(BATCHES),
      );

      // No money moved, and the ledger recorded no charge.
      const after = await world.balances();
      expect({ ...after, unfunded: await world.balance(UNFUNDED) }).toEqual({ payer: snapshot.payer, payee: snapshot.payee, unfunded: snapshot.unfunded });
      const rows = await gw.ledger.receipts({ since: snapshot.time, limit: 1_000_000 });
      expect(rows.filter((r) => MONEY_STATUSES.has(r.status) || r.status === 'redelivered')).toEqual([]);
      expect(upstream.seen.length).toBe(snapshot.seen);
      if (process.env['FUZZ_STATS'] === '1') console.log({ requests, verdicts: Object.fromEntries([...verdicts].sort((a, b) => b[1] - a[1])) });

      // The generators reach every refusal they aim at.
      const reasons = new Set([...verdicts.keys()].map((v) => v.split(' ')[1]));
      for (const expected of [
        'GW_ERR_PAYMENT_MALFORMED',
        'GW_ERR_METHOD_OVERRIDE',
        REASON.signature,
        REASON.recipientMismatch,
        REASON.validBefore,
        REASON.validAfter,
        REASON.valueMismatch,
        REASON.valueV1,
        REASON.nonceUsed,
        REASON.insufficientBalance,
        GATEWAY_REASON.invalidNetwork,
        GATEWAY_REASON.noMatchingRequirements,
        GATEWAY_REASON.proofNotEnabled,
      ]) {
        expect(reasons.has(expected), `no answer with ${expected} in ${requests} requests`).toBe(true);
      }
    },
    fuzzTimeoutMs(120_000),
  );
});
