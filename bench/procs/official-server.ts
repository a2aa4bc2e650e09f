/**
 * The official stack's resource server: express + @x402/express's `paymentMiddleware`, with an
 * `HTTPFacilitatorClient` pointing at the official facilitator (bench/procs/facilitator.ts). It
 * serves the small JSON answer itself, so unlike the gateway it makes no upstream hop.
 */
import { HTTPFacilitatorClient } from '@x402/core/server';
import { ExactEvmScheme } from '@x402/evm/exact/server';
import { paymentMiddleware, x402ResourceServer } from '@x402/express';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { SMALL_BODY } from '../lib/bodies.js';
import { childParams, serveChild, stringParam } from './serve-child.js';

await serveChild(async () => {
  const params = childParams();
  const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: stringParam(params, 'facilitator') })).register(
    'eip155:8453',
    new ExactEvmScheme(),
  );
  const app = express();
  app.use(
    paymentMiddleware(
      {
        'GET /paid/small': {
          accepts: { scheme: 'exact', price: '$0.01', network: 'eip155:8453', payTo: stringParam(params, 'payTo') },
          description: 'bench',
          mimeType: 'application/json',
        },
      },
      resourceServer,
    ),
  );
  app.get('/paid/small', (_req, res) => {
    res.type('application/json').send(SMALL_BODY);
  });
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
});
