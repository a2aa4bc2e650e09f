/**
 * `Verifier` over an ordered list of facilitators: the first that gives an answer decides.
 *
 * An answer (`isValid` true or false) is final, even a refusal: asking the next facilitator after
 * a "no" would let a client shop for a lenient one. Only a facilitator that gave no answer
 * (unreachable, timed out, 5xx, malformed, or refusing the gateway's credentials) is skipped: a
 * refused key says nothing about the payment, so the next facilitator judging it lets no client
 * shop for a verdict. When none answers, verification is an infrastructure fault, never free
 * access: `GW_ERR_FACILITATOR_AUTH` when one of them refused our key (the operator must act),
 * else `GW_ERR_FACILITATOR_UNAVAILABLE`. A signature that no facilitator can judge (an
 * ERC-6492 wrapper that does not decode) is refused before any is asked.
 */
import type { PaymentOption } from '../../config/types.js';
import { InfrastructureError } from '../../errors.js';
import { GATEWAY_REASON, REASON } from '../../protocol/reasons.js';
import type { DecodedPayment } from '../../protocol/types.js';
import { classifySignature } from '../exact-evm/signature.js';
import type { FacilitatorClient, FacilitatorFailure } from './client.js';
import { facilitatorRequestBody } from './request.js';
import type { PaymentContext, Verifier, VerifyResult } from '../ports.js';

export class FacilitatorVerifier implements Verifier {
  readonly #clients: readonly FacilitatorClient[];

  constructor(clients: readonly FacilitatorClient[]) {
    if (clients.length === 0) throw new Error('FacilitatorVerifier needs at least one facilitator');
    this.#clients = clients;
  }

  /** `context` is the request a v1 payment was made for: v1 requirements name their resource. */
  async verify(payment: DecodedPayment, option: PaymentOption, context: PaymentContext): Promise<VerifyResult> {
    const body = facilitatorRequestBody(payment, option, context);
    if (body === undefined) return { valid: false, reason: GATEWAY_REASON.invalidNetwork, message: 'x402 v1 cannot pay on this network' };
    // The reference facilitator throws on a 6492 wrapper that does not decode, and its 500 reads
    // here as "unavailable": the client's bad signature would become our fault (and be sent to
    // every fallback first). ERC-6492 makes it invalid, so it is refused as the local verifier does.
    if (classifySignature(payment.payload.signature).kind === 'malformed') {
      return { valid: false, reason: REASON.signature, payer: payment.payload.authorization.from };
    }

    const failures: FacilitatorFailure[] = [];
    for (const client of this.#clients) {
      const outcome = await client.verify(body);
      if (outcome.kind === 'unavailable') {
        failures.push(outcome.failure);
        continue;
      }
      const { answer } = outcome;
      // The signer of the authorization is the payer; a facilitator's own `payer` field is informational.
      const payer = payment.payload.authorization.from;
      if (answer.isValid) return { valid: true, payer };
      return {
        valid: false,
        reason: answer.invalidReason,
        ...(answer.invalidMessage === undefined ? {} : { message: answer.invalidMessage }),
        payer,
      };
    }
    throw unavailableError(failures);
  }
}

/** The fault thrown when no facilitator answered; every attempt is kept as the cause. */
function unavailableError(failures: readonly FacilitatorFailure[]): InfrastructureError {
  const detail = failures.map((f) => f.message).join('; ');
  const code = failures.some((f) => f.kind === 'auth_refused') ? 'GW_ERR_FACILITATOR_AUTH' : 'GW_ERR_FACILITATOR_UNAVAILABLE';
  return new InfrastructureError(code, `no facilitator could verify the payment: ${detail}`, {
    cause: new AggregateError(
      failures.map((f) => f.error ?? new Error(f.message)),
      `${failures.length} facilitator(s) failed`,
    ),
  });
}
