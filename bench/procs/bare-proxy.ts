/** The baseline: fastify + @fastify/http-proxy with defaults, nothing else, in front of the upstream. */
import httpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import { childParams, serveChild, stringParam } from './serve-child.js';

await serveChild(async () => {
  const upstream = stringParam(childParams(), 'upstream');
  const app = Fastify();
  await app.register(httpProxy, { upstream });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
});
