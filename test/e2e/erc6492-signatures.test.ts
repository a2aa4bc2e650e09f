/**
 * Regression: a payment whose signature ends with ERC-6492's magic suffix but is garbage inside
 * got `500 GW_ERR_GATEWAY_INTERNAL` (viem's `parseErc6492Signature` threw out of verification).
 * Every kind of 6492 wrapping, genuine or not, must be refused like any other bad signature:
 * 402 with the protocol's reason, or 400 when the header cannot be decoded; nothing forwarded,
 * nothing charged, one ledger row. Through the running gateway on the dev chain, for
 * `PAYMENT-SIGNATURE` (v2) and `X-PAYMENT` (v1), verified locally and by the official facilitator.
 */
import type { PaymentPayload } from '@x402/core/types';
import { isHex, serializeErc6492Signature, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChainClient } from '../../src/payments/chain/client.js';
import { LocalExactEvmSettler } from '../../src/payments/exact-evm/settle.js';
import { systemClock } from '../../src/payments/ports.js';
import { decodePaymentHeader, MAX_SIGNATURE_BYTES } from '../../src/protocol/decode-payment.js';
import type { RunningGateway } from '../../src/server.js';
import { challengeOf, localSettlementBase, PAYEE, SETTLER_KEY, startChainWorld, v2HttpClient, type ChainWorld } from '../helpers/chain-world.js';
import { startTestFacilitator, type TestFacilitator } from '../helpers/facilitator.js';
import { gatewayYamlHead, parseTestConfig, startGateway } from '../helpers/gateway.js';
import { decodeHeader, send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/** ERC-6492's magic suffix: 32 bytes of 0x6492. */
const MAGIC = '6492'.repeat(16);
/** A factory nobody allowed (the reference allows none by default). */
const BOGUS_FACTORY = '0x000000000000000000000000000000000000fac7';
const SIGNATURE = 'invalid_exact_evm_signature';
const FACTORY = 'eip6492_factory_not_allowed';

/** One 32-byte ABI word, as hex without 0x. */
const word = (value: bigint): string => value.toString(16).padStart(64, '0');

/** A well-formed wrapper whose factory calldata makes the whole signature exactly `bytes` long. */
function wrapperOfLength(inner: Hex, bytes: number): Hex {
  // head (3 words) + data length word + data + inner length word + inner padded (96) + suffix (32)
  const dataBytes = bytes - 32 * 3 - 32 - 32 - 96 - 32;
  const wrapped = serializeErc6492Signature({ address: BOGUS_FACTORY, data: `0x${'cd'.repeat(dataBytes)}`, signature: inner });
  if ((wrapped.length - 2) / 2 !== bytes) throw new Error(`built ${(wrapped.length - 2) / 2} bytes, wanted ${bytes}`);
  return wrapped;
}

interface Variant {
  readonly name: string;
  /** The signature to send, from the payer's genuine 65-byte one. */
  readonly wrap: (genuine: Hex) => Hex;
  readonly status: 400 | 402;
  readonly reason: string;
}

const VARIANTS: readonly Variant[] = [
  { name: 'garbage inside the wrapper', wrap: () => `0x${'ab'.repeat(200)}${MAGIC}`, status: 402, reason: SIGNATURE },
  { name: 'the genuine signature with the suffix appended, no ABI encoding', wrap: (g) => `${g}${MAGIC}`, status: 402, reason: SIGNATURE },
  {
    name: 'a genuine inner signature with a bogus factory (payer not deployed)',
    wrap: (g) => serializeErc6492Signature({ address: BOGUS_FACTORY, data: '0xdeadbeef', signature: g }),
    status: 402,
    reason: FACTORY,
  },
  {
    name: 'truncated: a genuine wrapper cut off after its head, suffix kept',
    wrap: (g) => `0x${serializeErc6492Signature({ address: BOGUS_FACTORY, data: '0xdeadbeef', signature: g }).slice(2, 2 + 64 * 5)}${MAGIC}`,
    status: 402,
    reason: SIGNATURE,
  },
  { name: 'truncated: 33 zero bytes and the suffix (the shortest signature accepted)', wrap: () => `0x${'00'.repeat(33)}${MAGIC}`, status: 402, reason: SIGNATURE },
  {
    name: 'huge: the inner signature declares 2^256 - 1 bytes',
    wrap: (g) => {
      const w = serializeErc6492Signature({ address: BOGUS_FACTORY, data: '0xdeadbeef', signature: g }).slice(2);
      // Words: factory, data offset, inner offset (0xa0 = word 5), data length, data; word 5 is the inner length.
      return `0x${w.slice(0, 64 * 5)}${word(2n ** 256n - 1n)}${w.slice(64 * 6)}`;
    },
    status: 402,
    reason: SIGNATURE,
  },
  { name: `huge: a well-formed wrapper of exactly ${MAX_SIGNATURE_BYTES} bytes`, wrap: (g) => wrapperOfLength(g, MAX_SIGNATURE_BYTES), status: 402, reason: FACTORY },
  // Refused at decode, before any verification: the signature field is longer than allowed.
  { name: `huge: a well-formed wrapper past ${MAX_SIGNATURE_BYTES} bytes`, wrap: (g) => wrapperOfLength(g, MAX_SIGNATURE_BYTES + 32), status: 400, reason: 'invalid_payload' },
];

let world: ChainWorld;
let upstream: TestUpstream;
let facilitator: TestFacilitator;

beforeAll(async () => {
  world = await startChainWorld();
  upstream = await startUpstream();
  facilitator = await startTestFacilitator({ rpcUrl: world.chain.rpcUrl, chainId: 8453, privateKey: SETTLER_KEY });
});

afterAll(async () => {
  await facilitator?.close();
  await upstream?.close();
  await world?.stop();
});

function gatewayYaml(network: string): string {
  return `${gatewayYamlHead({ payTo: PAYEE, network })}
upstreams:
  api: { url: "${upstream.url}" }
routes:
  - { match: "GET /weather", price: "$0.01" }
`;
}

/** The payer's genuine v2 payload for the route; its 65-byte signature is what the variants wrap. */
async function genuinePayload(gw: RunningGateway): Promise<PaymentPayload> {
  const http = v2HttpClient();
  return http.createPaymentPayload(await challengeOf(http, `${gw.url}/weather`));
}

/** The payer's genuine 65-byte signature in `payload`. */
function signatureOf(payload: PaymentPayload): Hex {
  const signature = payload.payload['signature'];
  if (typeof signature !== 'string' || !isHex(signature)) throw new Error('the client signed no hex signature');
  return signature;
}

/** The payload with `signature` in place of the genuine one, as a v2 or a v1 header. */
function headerWith(payload: PaymentPayload, signature: Hex, version: 1 | 2): Record<string, string> {
  const inner = { ...payload.payload, signature };
  if (version === 2) return { 'PAYMENT-SIGNATURE': Buffer.from(JSON.stringify({ ...payload, payload: inner })).toString('base64') };
  const v1 = { x402Version: 1, scheme: 'exact', network: 'base', payload: inner };
  return { 'X-PAYMENT': Buffer.from(JSON.stringify(v1)).toString('base64') };
}

describe.each([
  { verifier: 'local verification and settlement', network: () => localSettlementBase(world.chain.rpcUrl) },
  { verifier: 'the official facilitator', network: () => `base: { network: "eip155:8453", settle: { mode: facilitator, url: "${facilitator.url}" } }` },
])('ERC-6492-wrapped signatures, $verifier', ({ network }) => {
  let gw: RunningGateway;
  let payload: PaymentPayload;

  beforeAll(async () => {
    gw = await startGateway(gatewayYaml(network()));
    payload = await genuinePayload(gw);
  });

  afterAll(async () => {
    await gw?.close();
  });

  async function refusalsCounted(reason: string): Promise<number> {
    const { values } = await gw.metrics.verificationFailures.get();
    return values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
  }

  const cases = VARIANTS.flatMap((v) => ([1, 2] as const).map((version) => ({ ...v, version, header: version === 2 ? 'PAYMENT-SIGNATURE' : 'X-PAYMENT' })));

  it.each(cases)('$header, $name: $status $reason, nothing forwarded or charged', async ({ wrap, version, status, reason }) => {
    const signature = wrap(signatureOf(payload));
    const counted = await refusalsCounted(reason);
    const before = upstream.seen.length;
    const t0 = Date.now();
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/weather', { headers: headerWith(payload, signature, version) });
      expect(res.status).toBe(status);
      if (status === 402) {
        expect((decodeHeader(res.headers['payment-required']) as { error: string }).error).toBe(reason);
        expect((res.json() as { error: string }).error).toBe(reason);
      } else {
        expect(res.json()).toMatchObject({ statusCode: 400, code: 'GW_ERR_PAYMENT_MALFORMED' });
        expect((res.json() as { message: string }).message).toContain(reason);
      }
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect(upstream.seen.length - before).toBe(0);
    // Refused before any signature checked out: counted, but no row (junk costs no disk).
    expect(await gw.ledger.receipts({ since: t0 })).toEqual([]);
    expect(await refusalsCounted(reason)).toBe(counted + 1);
  });

  it('the genuine payment still pays afterwards: no refusal above spent its nonce', async () => {
    const delta = await world.moved(async () => {
      const res = await send(gw.url, 'GET', '/weather', { headers: headerWith(payload, signatureOf(payload), 2) });
      expect(res.status).toBe(200);
    });
    expect(delta).toEqual({ payer: -10_000n, payee: 10_000n });
  });
});

describe('the local settler, given an ERC-6492 wrapper that does not decode (verification refuses it first)', () => {
  it('refuses to settle and to estimate it, sending nothing, for every malformed variant', async () => {
    const config = parseTestConfig(gatewayYaml(localSettlementBase(world.chain.rpcUrl)));
    const base = config.networks.get('base');
    const route = config.routes.find((r) => r.match === 'GET /weather');
    const option = route?.price.kind === 'priced' ? route.price.options[0] : undefined;
    if (base === undefined || option === undefined) throw new Error('test config');
    const settler = new LocalExactEvmSettler({ network: base, client: createChainClient(base), privateKey: SETTLER_KEY, clock: systemClock });
    const gw = await startGateway(gatewayYaml(localSettlementBase(world.chain.rpcUrl)));
    const payload = await genuinePayload(gw).finally(() => gw.close());
    const sent = () => world.admin.getTransactionCount({ address: settler.address });
    const nonceBefore = await sent();
    const delta = await world.moved(async () => {
      for (const variant of VARIANTS.filter((v) => v.status === 402 && v.reason === SIGNATURE)) {
        for (const version of [1, 2] as const) {
          const headers = headerWith(payload, variant.wrap(signatureOf(payload)), version);
          const decoded = decodePaymentHeader({ paymentSignature: headers['PAYMENT-SIGNATURE'], xPayment: headers['X-PAYMENT'] });
          if (decoded.kind !== 'ok') throw new Error(`${variant.name}: header did not decode`);
          expect(await settler.checkGas(decoded.payment, option), variant.name).toMatchObject({ reason: SIGNATURE });
          expect(await settler.settle(decoded.payment, option), variant.name).toMatchObject({ success: false, reason: SIGNATURE, maybeOnChain: false });
        }
      }
    });
    expect(delta).toEqual({ payer: 0n, payee: 0n });
    expect(await sent()).toBe(nonceBefore);
  });
});
