/**
 * An HTTP client for one x402 facilitator (`POST /verify`, `POST /settle`, `GET /supported`).
 *
 * It knows the wire and nothing about fallback: every call resolves to either a well-formed
 * answer (a payment the facilitator accepted or refused, both final) or an `unavailable` outcome
 * (network error, timeout, unexpected status, malformed body) that the adapters above may route
 * around. It never throws for anything the facilitator or the network does.
 *
 * Status handling follows the official clients (protocol notes §4.2): a refusal may come as
 * `200 {isValid:false}` or as `4xx {isValid:false}` and means the same; a 2xx that does not parse
 * is never read as success. Redirects are followed (x402.org once answered 308), with undici's
 * rules: 307/308 resend the POST, 301/302/303 turn it into a GET (which a facilitator answers with
 * an error, so such a hop ends as `unavailable`), and a cross-origin hop drops `authorization`
 * and `cookie`, though not other configured headers.
 *
 * With a `cdp` key, every call carries `Authorization: Bearer <JWT>`, a token made for that one
 * call (cdp-jwt.ts). A 401 or 403 that is not an answer (one with `isValid:false` is a refusal
 * of the payment, as the official client reads it) is `auth_refused`: the facilitator turned the
 * gateway away, so nothing it was sent can have been acted on.
 *
 * This file is the transport (dispatcher, deadline, size limit, what counts as `unavailable`);
 * what a body says is decoded in answers.ts.
 */
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { readCdpSecret, type CdpSigningKey } from '../../config/cdp-key.js';
import type { FacilitatorConfig } from '../../config/types.js';
import type { WireRequirementV1, WireRequirementV2 } from '../../protocol/types.js';
import { NOT_SENT_ERROR_CODES } from '../chain/connection-errors.js';
import { describeFault } from '../chain/describe-fault.js';
import { errorCode } from '../chain/rpc-errors.js';
import { urlOrigin } from '../chain/url-origin.js';
import { systemClock, type Clock } from '../ports.js';
import {
  readSettleAnswer,
  readSupported,
  readVerifyAnswer,
  type FacilitatorSettleAnswer,
  type FacilitatorSupported,
  type FacilitatorVerifyAnswer,
} from './answers.js';
import { cdpJwt } from './cdp-jwt.js';

/** Redirect hops followed per call. */
export const FACILITATOR_MAX_REDIRECTS = 3;
/** A `/supported` list of every kind a large facilitator offers fits easily; anything bigger is not an answer. */
export const MAX_FACILITATOR_RESPONSE_BYTES = 1024 * 1024;

/** The body of `/verify` and `/settle` (§4.1): the payload as received, our matched requirement. */
export interface FacilitatorRequestBody {
  readonly x402Version: 1 | 2;
  readonly paymentPayload: Readonly<Record<string, unknown>>;
  readonly paymentRequirements: WireRequirementV1 | WireRequirementV2;
}

/** Why a call produced no usable answer; `auth_refused`: a 401 or 403 that carried no answer. */
export type FacilitatorFailureKind = 'unreachable' | 'timeout' | 'http_status' | 'malformed' | 'auth_refused';

export interface FacilitatorFailure {
  /** The facilitator's origin: its configured URL may hold an API key in the path, query or userinfo. */
  readonly url: string;
  readonly kind: FacilitatorFailureKind;
  /**
   * False only when the request provably never reached the facilitator (connection refused,
   * DNS failure, connect timeout) or was refused with a 4xx. A settle that may have been
   * received may also have been broadcast.
   */
  readonly mayHaveReceived: boolean;
  readonly message: string;
  readonly status?: number;
  readonly error?: unknown;
  /** With `auth_refused`: the CDP key id the gateway signed with, when it signed (never the secret). */
  readonly keyId?: string;
}

export type FacilitatorOutcome<T> =
  | { readonly kind: 'answer'; readonly status: number; readonly answer: T }
  | { readonly kind: 'unavailable'; readonly failure: FacilitatorFailure };

/**
 * The dispatcher facilitator clients share: keep-alive pools per origin plus redirect handling.
 * Pass one to every client of a gateway and close it once at shutdown.
 */
export function createFacilitatorDispatcher(): Dispatcher {
  return new Agent().compose(interceptors.redirect({ maxRedirections: FACILITATOR_MAX_REDIRECTS }));
}

export interface FacilitatorClientOptions {
  /** A shared dispatcher from `createFacilitatorDispatcher`; the client makes (and owns) its own otherwise. */
  readonly dispatcher?: Dispatcher;
  /** The time CDP tokens are issued at; the system clock by default. */
  readonly clock?: Clock;
}

/** The client for one configured facilitator. */
export class FacilitatorClient {
  readonly url: string;
  /** `url`'s origin, for messages and logs (url-origin.ts). */
  readonly displayUrl: string;
  readonly #timeoutMs: number;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #endpoints: Readonly<Record<'verify' | 'settle' | 'supported', string>>;
  readonly #cdp: { readonly keyId: string; readonly key: CdpSigningKey } | undefined;
  readonly #clock: Clock;

  constructor(config: FacilitatorConfig, options: FacilitatorClientOptions = {}) {
    this.url = config.url.replace(/\/+$/, '');
    this.displayUrl = urlOrigin(this.url);
    this.#endpoints = {
      verify: endpoint(this.url, '/verify'),
      settle: endpoint(this.url, '/settle'),
      supported: endpoint(this.url, '/supported'),
    };
    this.#timeoutMs = config.timeoutMs;
    // Lower-cased so a configured `Content-Type` cannot end up sent twice beside ours.
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(config.headers)) headers[name.toLowerCase()] = value;
    headers['accept'] = 'application/json';
    this.#headers = Object.freeze(headers);
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? createFacilitatorDispatcher();
    this.#clock = options.clock ?? systemClock;
    if (config.cdp !== undefined) {
      const read = readCdpSecret(config.cdp.apiKeySecret);
      // Config load refused such a secret with its YAML path; reaching here is a caller's bug.
      if (!read.ok) throw new Error(`facilitator ${this.displayUrl}: cdp.apiKeySecret ${read.problem}`);
      this.#cdp = { keyId: config.cdp.apiKeyId, key: read.key };
    }
  }

  verify(body: FacilitatorRequestBody): Promise<FacilitatorOutcome<FacilitatorVerifyAnswer>> {
    return this.#call('POST', 'verify', body, readVerifyAnswer);
  }

  settle(body: FacilitatorRequestBody): Promise<FacilitatorOutcome<FacilitatorSettleAnswer>> {
    return this.#call('POST', 'settle', body, readSettleAnswer);
  }

  supported(): Promise<FacilitatorOutcome<FacilitatorSupported>> {
    return this.#call('GET', 'supported', undefined, readSupported);
  }

  /** Closes the dispatcher if this client made it; a shared one is its owner's to close. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  async #call<T>(
    method: 'GET' | 'POST',
    operation: 'verify' | 'settle' | 'supported',
    body: FacilitatorRequestBody | undefined,
    read: (status: number, json: unknown) => T | undefined,
  ): Promise<FacilitatorOutcome<T>> {
    const url = this.#endpoints[operation];
    // What messages say of the call: the operation and the origin, never the configured path.
    const shown = `${method} /${operation} to ${this.displayUrl}`;
    const unavailable = (failure: Omit<FacilitatorFailure, 'url'>): FacilitatorOutcome<T> => ({
      kind: 'unavailable',
      failure: { url: this.displayUrl, ...failure },
    });
    // One deadline for the whole exchange, redirects and body included.
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let text: string;
    let mediaType: string | undefined;
    let headers: Readonly<Record<string, string>> =
      body === undefined ? this.#headers : { ...this.#headers, 'content-type': 'application/json' };
    if (this.#cdp !== undefined) {
      try {
        const jwt = await cdpJwt({ keyId: this.#cdp.keyId, key: this.#cdp.key, call: { method, url }, nowSeconds: this.#clock.nowMs() / 1000 });
        headers = { ...headers, authorization: `Bearer ${jwt}` };
      } catch (error) {
        // Not expected with a key that config load read; never sent, so never received.
        return unavailable({ kind: 'unreachable', mayHaveReceived: false, message: `${shown}: could not sign the CDP token: ${describeFault(error)}`, error });
      }
    }
    try {
      const res = await request(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
        dispatcher: this.#dispatcher,
      });
      status = res.statusCode;
      mediaType = mediaTypeOf(res.headers['content-type']);
      text = await readLimited(res.body, MAX_FACILITATOR_RESPONSE_BYTES);
    } catch (error) {
      if (signal.aborted) {
        return unavailable({
          kind: 'timeout',
          mayHaveReceived: true,
          message: `${shown} did not complete within ${this.#timeoutMs} ms`,
          error,
        });
      }
      if (error instanceof ResponseTooLarge) {
        return unavailable({ kind: 'malformed', mayHaveReceived: true, message: `${shown}: ${error.message}`, error });
      }
      return unavailable({
        kind: 'unreachable',
        mayHaveReceived: !NOT_SENT_ERROR_CODES.has(socketCode(error) ?? ''),
        message: `${shown} failed: ${describeFault(error)}`,
        error,
      });
    }

    // Only 2xx and 4xx can carry an answer; anything else (5xx, a redirect past the limit) is a fault.
    const answerable = (status >= 200 && status < 300) || (status >= 400 && status < 500);
    const mayHaveReceived = !(status >= 400 && status < 500);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const answer = answerable && json !== undefined ? read(status, json) : undefined;
    if (answer !== undefined) return { kind: 'answer', status, answer };
    if (status === 401 || status === 403) {
      const keyId = this.#cdp?.keyId;
      return unavailable({
        kind: 'auth_refused',
        mayHaveReceived: false,
        status,
        ...(keyId === undefined ? {} : { keyId }),
        message:
          keyId === undefined
            ? `${shown} answered ${status}: the facilitator wants credentials the gateway does not send (a CDP facilitator needs a cdp block)`
            : `${shown} answered ${status}: the facilitator refused CDP API key "${keyId}"`,
      });
    }
    return unavailable({
      kind: answerable && status < 300 ? 'malformed' : 'http_status',
      mayHaveReceived,
      status,
      message: `${shown} answered ${status} with ${bodySize(text, mediaType)}`,
    });
  }
}

class ResponseTooLarge extends Error {}

async function readLimited(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new ResponseTooLarge(`response body exceeds ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** undici wraps the socket error: the code may sit on the error or on a cause; `UND_ERR_SOCKET` says nothing more. */
function socketCode(error: unknown): string | undefined {
  return errorCode(error, (code) => code !== 'UND_ERR_SOCKET');
}

/** `base` + `/verify` etc., appended to the path so that a query string (an API key) stays a query string. */
function endpoint(base: string, path: string): string {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  return url.toString();
}

/** The media type of a `content-type` value (`text/html`), when it is one; parameters dropped. */
function mediaTypeOf(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : /^\s*([\w.+-]{1,64}\/[\w.+-]{1,64})/.exec(first)?.[1]?.toLowerCase();
}

/**
 * A body that is no answer, by its size and type only. It is not quoted: error pages often echo
 * the request (the key in the URL's path or query, a configured header), and whoever reads the
 * message can ask the facilitator itself.
 */
function bodySize(text: string, mediaType: string | undefined): string {
  if (text.trim() === '') return 'an empty body';
  return `a body of ${Buffer.byteLength(text)} bytes${mediaType === undefined ? '' : ` of ${mediaType}`} that is not an answer`;
}
