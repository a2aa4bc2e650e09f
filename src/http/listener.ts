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
 *
 * The socket's limits are `server` in the config (see applyLimits for what a reload changes):
 * node's headersTimeout and requestTimeout answer a head or a whole request that takes too long
 * with a bare 408 (a slowloris head, a trickled body), maxHeaderSize a head too large with a bare
 * 431, and node's parser refuses smuggling shapes (Content-Length with Transfer-Encoding, two
 * Content-Lengths, obs-fold, a bare LF) with a bare 400, all before a request reaches an app.
 * test/integration/http-edge-raw.test.ts pins each with raw bytes. The idle timeout is the
 * gateway's own (onSocketIdle). Body limits are per route, in the app (body-limit.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config, ServerConfig } from '../config/types.js';
import { errorBody, GatewayError } from '../errors.js';

/** How often a drain looks whether the work in flight is done. */
const DRAIN_POLL_MS = 25;
/**
 * Longest gap between node's sweeps for expired heads and requests. Its default is 30 s, so a
 * 10 s headersTimeout held only within 40 s; a sweep walks the connections with a request still
 * arriving, which is cheap.
 */
const MAX_CONNECTIONS_CHECK_MS = 1_000;

/** Requests of a socket in flight (several when pipelined), kept on the socket itself. */
const IN_FLIGHT = Symbol('x402-gateway requests in flight');
type TrackedSocket = Socket & { [IN_FLIGHT]?: number };

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
    const limits = first.config.server;
    const options = {
      // Fixed for the server's life: node sets each connection's parser up with it.
      maxHeaderSize: limits.maxHeaderBytes,
      // Fixed too (a createServer option only), derived from the first config.
      connectionsCheckingInterval: connectionsCheckMs(limits),
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
    };
    this.#server = createServer(options, (req: IncomingMessage, res: ServerResponse) => {
      if (this.#draining) {
        const err = new GatewayError('GW_ERR_GATEWAY_DRAINING');
        res.writeHead(err.statusCode, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
        res.end(JSON.stringify(errorBody(err)));
        return;
      }
      const app = this.#live;
      const socket: TrackedSocket = req.socket;
      app.inFlight++;
      socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 0) + 1;
      res.once('close', () => {
        app.inFlight--;
        socket[IN_FLIGHT] = (socket[IN_FLIGHT] ?? 1) - 1;
        this.#closeWhenIdle(app);
      });
      app.gateway.handle(req, res);
    });
    // With a listener here node no longer destroys a silent socket itself: onSocketIdle decides.
    this.#server.on('timeout', onSocketIdle);
    applyLimits(this.#server, limits);
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

  /**
   * Routes new requests to `next`; the previous app closes after its last request. The socket
   * limits node lets change on a listening server change with it (applyLimits).
   */
  swap(next: ServedApp): void {
    const previous = this.#live;
    this.#live = this.#add(next);
    applyLimits(this.#server, next.config.server);
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

/**
 * The limits a listening server takes, at start and on every reload:
 *
 * - headersTimeoutMs, requestTimeoutMs: every connection, open ones too (node's sweep compares
 *   each request's start with the server's current values).
 * - keepAliveTimeoutMs: each connection from its next answer on.
 * - idleTimeoutMs: new connections, and open ones from their next request (node re-arms a kept-
 *   alive socket's timeout from the server's at each request).
 *
 * maxHeaderBytes needs a restart: node takes it at createServer only and sets each connection's
 * parser up with it. So does the sweep interval, derived from the first config's timeouts.
 */
function applyLimits(server: Server, limits: ServerConfig): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
}

/** node's sweep interval: a quarter of the shorter timeout, at most a second; each then holds within that much more. */
function connectionsCheckMs(limits: ServerConfig): number {
  return Math.min(MAX_CONNECTIONS_CHECK_MS, Math.max(10, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/**
 * A socket silent for `idleTimeoutMs` (or, between requests, for the keep-alive timeout). Cut,
 * unless a request is in flight on it and nothing waits to be written: then the gateway is the
 * one waiting (an upstream's answer, a settlement, a quiet paid event stream), which the
 * upstream's own timeouts bound; cutting it would cut a request that may have been paid for. A
 * caller that stopped reading leaves bytes queued on the socket and is cut; one whose body
 * stopped is cut by requestTimeout. A spared socket is looked at again after its next silence:
 * any byte in or out re-arms node's timer.
 */
function onSocketIdle(socket: TrackedSocket): void {
  if ((socket[IN_FLIGHT] ?? 0) > 0 && socket.writableLength === 0) return;
  socket.destroy();
}

function addressUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
