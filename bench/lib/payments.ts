/**
 * Pre-signed, unique payments: each paid request of a window carries its own authorization
 * (a fresh EIP-3009 nonce), signed before the window by the official v2 client, so the figures
 * are the server's work and not the client's signing.
 */
import type { x402HTTPClient } from '@x402/core/client';
import { challengeOf } from '../../test/helpers/chain-world.js';

/** `count` payment headers for the challenge `url` answers with. */
export async function presign(http: x402HTTPClient, url: string, count: number): Promise<Record<string, string>[]> {
  const challenge = await challengeOf(http, url);
  const headers: Record<string, string>[] = [];
  for (let i = 0; i < count; i++) headers.push(http.encodePaymentSignatureHeader(await http.createPaymentPayload(challenge)));
  return headers;
}

/** Hands out the headers in order; running out is a harness bug (the window's amount was larger). */
export function headerQueue(headers: readonly Record<string, string>[]): () => Record<string, string> {
  let next = 0;
  return () => {
    const h = headers[next++];
    if (h === undefined) throw new Error(`ran out of pre-signed payments after ${headers.length}`);
    return h;
  };
}
