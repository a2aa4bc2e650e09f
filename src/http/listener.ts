/**
 * The one public socket. Each config gets its own fastify app (gateway.ts); this listener hands
 * every request to the live one, counts each app's requests in flight, and closes a retired app
 * once its last request has ended. So a reload is one assignment (`swap`): new requests meet the
 * new config while requests in flight finish on the app, and prices, they started with.
 *
 * Drain (SIGTERM): the listener stops accepting, idle keep-alive connections close, a request on
 * a busy connection gets 503 GW_ERR_GATEWAY_DRAINING, and what is in flight on every app (plus
 * any other work the caller names, such as settlements whose caller has gone) may finish within
 * the grace period; then whatever is left is cut.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { errorBody, GatewayError } from '../errors.js';

/**
 * Longer than common load balancers' idle timeouts (60 s on AWS ALB and GCP), so they close
 * idle connections first and never race us.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** How often a drain looks whether the work in flight is done. */
const DRAIN_POLL_MS = 25;

/** What the listener needs of one config's app (gateway.ts builds them). */
export interface ServedApp {
  readonly config: Config;
  readonly app: { close(): Promise<unknown> };
  /** The app's request handler. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
}

/** An app serving traffic, and how many of its requests are still in flight. */
interface LiveApp {
  readonly gateway: ServedApp;
  inFlight: number;
  retired: boolean;
}

export class PublicListener {
  readonly #server: Server;
  /** Every app not yet closed: the live one and retired ones still finishing requests. */
  readonly #apps = new Set<LiveApp>();
  #live: LiveApp;
  #draining = false;

  constructor(first: ServedApp) {
    this.#live = this.#add(first);
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (this.#draining) {
        const err = new GatewayError('GW_ERR_GATEWAY_DRAINING');
        res.writeHead(err.statusCode, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
        res.end(JSON.stringify(errorBody(err)));
        return;
      }
      const app = this.#live;
      app.inFlight++;
      res.once('close', () => {
        app.inFlight--;
        this.#closeWhenIdle(app);
      });
      app.gateway.handle(req, res);
    });
    this.#server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  }

  /** The config of the live app. */
  get config(): Config {
    return this.#live.gateway.config;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Requests in flight on every app. */
  get inFlight(): number {
    return [...this.#apps].reduce((n, a) => n + a.inFlight, 0);
  }

  /** Listens; resolves with `http://host:port`. */
  listen(port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve(addressUrl(this.#server.address() as AddressInfo)));
    });
  }

  /** Routes new requests to `next`; the previous app closes after its last request. */
  swap(next: ServedApp): void {
    const previous = this.#live;
    this.#live = this.#add(next);
    previous.retired = true;
    this.#closeWhenIdle(previous);
  }

  /**
   * Stops accepting and waits, at most `graceMs`, for the requests in flight and for `otherWork()`
   * to reach 0; then cuts the connections left and closes every app.
   */
  async drain(graceMs: number, otherWork: () => number, logger: Logger): Promise<void> {
    this.#draining = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    const busy = () => this.inFlight + otherWork();
    while (busy() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    if (busy() > 0) logger.error({ inFlight: busy() }, 'drain grace period over; cutting the requests left');
    this.#server.closeAllConnections();
    await stopped;
    await this.closeApps();
  }

  /** Closes every app (a failed start, or the end of a drain). */
  async closeApps(): Promise<void> {
    this.#server.close();
    for (const app of this.#apps) await app.gateway.app.close();
    this.#apps.clear();
  }

  #add(gateway: ServedApp): LiveApp {
    const app: LiveApp = { gateway, inFlight: 0, retired: false };
    this.#apps.add(app);
    return app;
  }

  #closeWhenIdle(app: LiveApp): void {
    if (app.retired && app.inFlight === 0 && this.#apps.delete(app)) void app.gateway.app.close();
  }
}

function addressUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
