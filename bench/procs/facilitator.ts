/** The official facilitator (@x402/core + @x402/evm, as test/helpers/facilitator.ts builds it), in its own process. */
import { startTestFacilitator } from '../../test/helpers/facilitator.js';
import { childParams, serveChild, stringParam } from './serve-child.js';

await serveChild(async () => {
  const params = childParams();
  const key = stringParam(params, 'privateKey');
  if (!isHexKey(key)) throw new Error('privateKey is not a 32-byte hex key');
  const facilitator = await startTestFacilitator({ rpcUrl: stringParam(params, 'rpcUrl'), chainId: 8453, privateKey: key });
  return { url: facilitator.url, close: () => facilitator.close() };
});

function isHexKey(value: string): value is `0x${string}` {
  return /^0x[0-9a-fA-F]{64}$/.test(value);
}
