/**
 * The one catalogue of the gateway's error codes. Each code has a fixed HTTP status; the README's
 * table is checked against this list by a test, so the two never drift apart.
 *
 * Client-facing errors that are not payment challenges use fastify's shape:
 * `{ statusCode, code, error, message }`. Payment refusals are 402 challenges, not errors.
 */

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ERROR_CODES = {
  GW_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'No route matches this request' },
  GW_ERR_PATH_INVALID: { status: 400, message: 'The request path is not a valid URL path' },
  GW_ERR_HOST_INVALID: { status: 400, message: 'The Host header must name one host, with an optional port' },
  GW_ERR_METHOD_OVERRIDE: { status: 400, message: 'A method override (_method) is not accepted: send the request with the method it means' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  GW_ERR_RATE_LIMITED: { status: 429, message: 'Too many requests; try again later' },
  GW_ERR_PAYMENT_MALFORMED: { status: 400, message: 'The payment header could not be decoded' },
  GW_ERR_PROOF_MALFORMED: { status: 400, message: 'X-Payment-Proof must be a 32-byte transaction hash' },
  GW_ERR_PROOF_SIGNATURE_MALFORMED: { status: 400, message: 'X-Payment-Proof-Signature must be a 65-byte signature in 0x hex' },
  GW_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream service could not be reached' },
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream service did not answer in time' },
  GW_ERR_CHAIN_UNAVAILABLE: { status: 503, message: 'The payment network cannot be reached; try again later' },
  GW_ERR_FACILITATOR_UNAVAILABLE: { status: 502, message: 'No payment facilitator answered' },
  GW_ERR_FACILITATOR_AUTH: { status: 502, message: "The payment facilitator refused the gateway's credentials; nothing was charged" },
  GW_ERR_LEDGER_UNAVAILABLE: { status: 503, message: 'The payment ledger cannot record this payment; try again later' },
  GW_ERR_GATEWAY_DRAINING: { status: 503, message: 'The gateway is shutting down' },
  GW_ERR_GATEWAY_INTERNAL: { status: 500, message: 'Internal gateway error' },
  GW_ERR_ADMIN_UNAUTHORIZED: { status: 401, message: 'This admin endpoint needs admin.token as Authorization: Bearer <token>' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error the gateway answers a client with; `cause` keeps the underlying fault for logs. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;

  constructor(code: ErrorCode, options: { message?: string; cause?: unknown } = {}) {
    super(options.message ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
  }
}

/** The fastify-shaped JSON body for an error response. */
export function errorBody(err: GatewayError): { statusCode: number; code: ErrorCode; error: string; message: string } {
  return { statusCode: err.statusCode, code: err.code, error: STATUS_TEXT[err.statusCode] ?? 'Error', message: err.message };
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * Infrastructure fault while verifying or settling (RPC down, facilitator unreachable or refusing our key).
 * Thrown by adapters; the HTTP layer turns it into a 503/502, never into free access.
 */
export class InfrastructureError extends Error {
  readonly code: 'GW_ERR_CHAIN_UNAVAILABLE' | 'GW_ERR_FACILITATOR_UNAVAILABLE' | 'GW_ERR_FACILITATOR_AUTH' | 'GW_ERR_LEDGER_UNAVAILABLE';

  constructor(code: InfrastructureError['code'], message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'InfrastructureError';
    this.code = code;
  }
}
