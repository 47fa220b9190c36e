// Owns the admin HTTP endpoint: /metrics (Prometheus text), /healthz (liveness) and
// /readyz (readiness as reported by the gateway), GET and HEAD only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';

export interface Readiness {
  ready: boolean;
  reason?: string;
  details?: unknown;
}

export interface AdminServerOptions {
  /** IPv4 or IPv6 literal to bind. */
  address: string;
  /** 0 picks a free port; read `port` after listen(). */
  port: number;
  registry: Registry;
  /** Called per /readyz request; must be cheap and must not block. */
  readiness: () => Readiness;
  logger: Logger;
}

/**
 * Scrapers and probes hold a handful of connections; anything beyond this is refused at
 * accept so a misbehaving client cannot exhaust file descriptors.
 */
const MAX_ADMIN_CONNECTIONS = 64;
/** A request must arrive complete within this time, or its socket is closed. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Idle keep-alive sockets are closed after this long. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

const TEXT_PLAIN = 'text/plain; charset=utf-8';
const APPLICATION_JSON = 'application/json; charset=utf-8';

export class AdminServer {
  readonly #server: Server;
  readonly #options: AdminServerOptions;
  readonly #log: Logger;
  #listening = false;

  constructor(opts: AdminServerOptions) {
    this.#options = opts;
    this.#log = opts.logger.child({ component: 'admin' });
    this.#server = createServer(
      { requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS },
      (req, res) => {
        this.#handle(req, res);
      },
    );
    this.#server.maxConnections = MAX_ADMIN_CONNECTIONS;
  }

  /** The bound port (the assigned one when constructed with port 0); 0 before listen(). */
  get port(): number {
    const address = this.#server.address();
    return address !== null && typeof address === 'object' ? (address as AddressInfo).port : 0;
  }

  /** Binds the socket; rejects with the system error (code EADDRINUSE, EACCES, ...) on failure. */
  listen(): Promise<void> {
    const { address, port } = this.#options;
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        this.#server.off('listening', onListening);
        const wrapped = new Error(
          `admin server cannot listen on ${formatHostPort(address, port)}: ${error.code ?? error.message}`,
          { cause: error },
        ) as NodeJS.ErrnoException;
        wrapped.code = error.code;
        wrapped.syscall = error.syscall;
        reject(wrapped);
      };
      const onListening = (): void => {
        this.#server.off('error', onError);
        this.#listening = true;
        // After bind, a server error is unexpected: log it rather than crash the gateway.
        this.#server.on('error', (error) => this.#log.error({ err: error }, 'admin server error'));
        this.#log.info({ address, port: this.port }, 'admin server listening');
        resolve();
      };
      this.#server.once('error', onError);
      this.#server.once('listening', onListening);
      this.#server.listen({ host: address, port, exclusive: true });
    });
  }

  /** Stops accepting, drops keep-alive and in-progress admin connections, resolves once closed. */
  close(): Promise<void> {
    if (!this.#listening) return Promise.resolve();
    this.#listening = false;
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      // Scrapes are cheap and retried; there is nothing worth waiting for on these sockets.
      this.#server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? '';
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ method, path, remote: req.socket.remoteAddress }, 'admin request');
    }

    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      send(res, 404, TEXT_PLAIN, 'not found\n');
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, TEXT_PLAIN, 'method not allowed\n');
      return;
    }

    switch (path) {
      case '/healthz':
        send(res, 200, TEXT_PLAIN, 'ok\n');
        return;
      case '/readyz':
        this.#readyz(res);
        return;
      default:
        // HEAD runs the same collection so its Content-Length is the one GET would send;
        // node:http omits the body itself.
        this.#metrics(res);
    }
  }

  #readyz(res: ServerResponse): void {
    let readiness: Readiness;
    try {
      readiness = this.#options.readiness();
    } catch (error) {
      this.#log.warn({ err: error }, 'readiness check threw');
      readiness = { ready: false, reason: 'readiness check failed' };
    }
    const body: Readiness = readiness.ready
      ? { ready: true }
      : { ready: false, reason: readiness.reason ?? 'not ready' };
    if (readiness.details !== undefined) body.details = readiness.details;
    send(res, readiness.ready ? 200 : 503, APPLICATION_JSON, `${JSON.stringify(body)}\n`);
  }

  #metrics(res: ServerResponse): void {
    const { registry } = this.#options;
    registry.metrics().then(
      (text) => send(res, 200, registry.contentType, text),
      (error: unknown) => {
        this.#log.warn({ err: error }, 'metrics collection failed');
        send(res, 500, TEXT_PLAIN, 'metrics collection failed\n');
      },
    );
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
