/** The gateway under test, from config text, as `x402-gateway start` runs it (its own logger and ledger). */
import { parseConfigText } from '../../src/config/load.js';
import { runGateway } from '../../src/server.js';
import { childParams, serveChild, stringParam } from './serve-child.js';

await serveChild(async () => {
  const parsed = parseConfigText(stringParam(childParams(), 'config'), {});
  if (!parsed.ok) throw new Error(`bench gateway config:\n${parsed.problems.join('\n')}`);
  const gateway = await runGateway(parsed.config);
  return { url: gateway.url, close: () => gateway.close() };
});
