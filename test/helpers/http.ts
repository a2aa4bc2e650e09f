/**
 * A plain HTTP client for tests that sends the request target exactly as written (fetch and
 * URL parsing would resolve `/./` and `..` client-side and hide the bypass attempts).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  text(): string;
  json(): unknown;
}

export function send(
  baseUrl: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text: () => body.toString('utf8'),
          json: () => JSON.parse(body.toString('utf8')) as unknown,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Decodes a base64 JSON header such as PAYMENT-REQUIRED. */
export function decodeHeader(value: string | string[] | undefined): unknown {
  if (typeof value !== 'string') throw new Error(`expected one header value, got ${String(value)}`);
  return JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as unknown;
}
