import { hashMessage, recoverMessageAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { isProofSignature, PROOF_TX_PLACEHOLDER, proofMessage, proofMessageTemplate } from '../../src/protocol/proof-message.js';

const TX = `0x${'Ab'.repeat(32)}` as const;
const URL = 'https://gw.example.com/v1/report?day=1';
const KEY = `0x${'11'.repeat(32)}` as const;

describe('proofMessage', () => {
  it('is one fixed line naming the lower-cased hash and the resource URL exactly', () => {
    expect(proofMessage(TX, URL)).toBe(`x402 payment proof: transaction 0x${'ab'.repeat(32)} for https://gw.example.com/v1/report?day=1`);
    expect(proofMessage(TX, URL)).toBe(proofMessage(TX.toLowerCase() as `0x${string}`, URL));
    expect(proofMessage(TX, URL)).not.toBe(proofMessage(TX, `${URL}&x=1`));
  });

  it('is the template with the placeholder replaced by the hash', () => {
    expect(proofMessageTemplate(URL)).toBe(`x402 payment proof: transaction ${PROOF_TX_PLACEHOLDER} for ${URL}`);
    expect(proofMessageTemplate(URL)?.replace(PROOF_TX_PLACEHOLDER, TX.toLowerCase())).toBe(proofMessage(TX, URL));
  });

  it('has no header template for a URL a header value cannot carry', () => {
    expect(proofMessageTemplate('https://gw.example.com/caf\u00e9')).toBeUndefined();
    expect(proofMessageTemplate('https://gw.example.com/a\r\nb')).toBeUndefined();
  });

  it('is what viem signMessage (personal_sign) signs: EIP-191 over the UTF-8 text', async () => {
    const account = privateKeyToAccount(KEY);
    const message = proofMessage(TX, URL);
    const signature = await account.signMessage({ message });
    expect(isProofSignature(signature)).toBe(true);
    expect(await recoverMessageAddress({ message, signature })).toBe(account.address);
    expect(hashMessage(message)).not.toBe(hashMessage(proofMessage(TX, `${URL}#`)));
  });
});

describe('isProofSignature', () => {
  it('takes 65 bytes of 0x hex only', () => {
    expect(isProofSignature(`0x${'1f'.repeat(65)}`)).toBe(true);
    expect(isProofSignature(`0x${'1f'.repeat(64)}`)).toBe(false);
    expect(isProofSignature(`0x${'1f'.repeat(66)}`)).toBe(false);
    expect(isProofSignature(`${'1f'.repeat(65)}`)).toBe(false);
    expect(isProofSignature(`0x${'zz'.repeat(65)}`)).toBe(false);
  });
});
