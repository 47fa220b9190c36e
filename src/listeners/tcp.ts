// A TCP listener per RFC 7766: length-prefixed messages, many queries per connection
// answered as they complete, an idle timeout, a connection cap and a cap on each
// connection's queries in flight.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { PROXY_INCOMPLETE, PROXY_INVALID, parseProxyV2 } from '../identity/proxy-v2.js';
import { type ListenerTrust, TRUST_NOBODY, trusts } from '../identity/trust.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../log-throttle.js';
import { type EntryResult, MALFORMED, PENDING, type QueryEntry } from '../pipeline/entry.js';
import type { StageResult } from '../pipeline/stage.js';
import { ListenError } from './errors.js';

export interface TcpLimits {
  readonly maxTcpConnections: number;
  readonly tcpIdleTimeoutMs: number;
  readonly maxTcpInflightPerConnection: number;
}

/** A client that stops reading may leave at most this many answer bytes queued before it is cut. */
const MAX_PENDING_WRITE_BYTES = 1 << 20;

export class TcpListener {
  private server: net.Server | null = null;
  /** Open connections; bounded by `maxTcpConnections`. */
  private readonly connections = new Set<Connection>();
  private boundPort = 0;
  /** Who may name the client (PROXY v2, ECS); replaced when a reload changes the listener's keys. */
  trust: ListenerTrust = TRUST_NOBODY;
  /** Accept errors (EMFILE under a connection flood) repeat per connection: once per kind per interval. */
  private readonly serverErrors: ThrottledLog;

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly entry: QueryEntry,
    private readonly limits: () => TcpLimits,
    logger: Logger,
  ) {
    this.serverErrors = new ThrottledLog(
      logger.child({ listener: 'tcp', address, port }),
      'tcp server error',
    );
  }

  get localPort(): number {
    return this.boundPort;
  }

  /** Client connections open now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  listen(): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(new ListenError('tcp', this.address, this.port, err));
      server.once('error', onError);
      // Not exclusive: in a cluster worker the primary binds the socket once and every worker
      // accepts on it (the kernel spreads connections); outside a cluster the flag does nothing.
      server.listen({ port: this.port, host: this.address, exclusive: false, backlog: 1024 }, () => {
        server.off('error', onError);
        server.on('error', (err: NodeJS.ErrnoException) =>
          this.serverErrors.warn(err.code ?? 'unknown', { err }),
        );
        this.boundPort = (server.address() as net.AddressInfo).port;
        this.server = server;
        resolve();
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    const limits = this.limits();
    if (this.connections.size >= limits.maxTcpConnections || this.server === null) {
      // Over the cap: close at once rather than let the client wait on a queue.
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.entry, limits, this.trust, () => this.connections.delete(conn));
    this.connections.add(conn);
  }

  /**
   * Stop accepting; open connections are read no further, answer what they have in flight,
   * then close. Resolves when every connection is gone or `graceMs` passed (then they are cut).
   */
  async close(graceMs = 0): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) server.close();
    this.serverErrors.flush();
    for (const conn of this.connections) conn.drain();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const conn of this.connections) conn.destroy();
    this.connections.clear();
  }
}

/**
 * One client connection. Idle means: no complete message read and no answer written for
 * `tcpIdleTimeoutMs`, with nothing in flight. Bytes of an unfinished message are not
 * activity, so a client that trickles a frame a byte at a time (slowloris) is cut like a
 * silent one; a connection with queries in flight is never idle (they end within
 * `limits.timeout_ms`, and their answers are activity). At the idle timeout the socket is
 * destroyed, not ended: a client that never closes its side must not keep its slot.
 */
class Connection {
  /** Bytes read and not yet handed on: whole messages, then at most one partial one. */
  private pending: Buffer | null = null;
  /** Chunks of a partial message that arrived after `pending`, not yet copied into it. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Read once: the getters are native calls. */
  private readonly remoteAddress: string;
  private readonly remotePort: number;
  /** Who the queries are for: the remote address, or the client a PROXY header named. */
  private client: string;
  /** The forwarder that named `client`, or null. */
  private via: string | null = null;
  /** A PROXY v2 header must come first, and has not fully arrived yet. */
  private awaitingProxyHeader: boolean;
  private readonly ecsFrom: ListenerTrust['ecsFrom'];
  private ecsTrusted: boolean;
  private readonly idleMs: number;
  private readonly maxInflight: number;
  private inflight = 0;
  /** performance.now() of the last complete message or answer. */
  private lastActive: number;
  private idleTimer: NodeJS.Timeout;
  /** Reading stopped because `maxInflight` queries are waiting. */
  private blocked = false;
  private draining = false;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly entry: QueryEntry,
    limits: TcpLimits,
    trust: ListenerTrust,
    private readonly onClose: () => void,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.client = this.remoteAddress;
    this.awaitingProxyHeader = trusts(trust.proxyFrom, this.remoteAddress);
    this.ecsFrom = trust.ecsFrom;
    this.ecsTrusted = !this.awaitingProxyHeader && trusts(trust.ecsFrom, this.client);
    this.idleMs = limits.tcpIdleTimeoutMs;
    this.maxInflight = limits.maxTcpInflightPerConnection;
    this.lastActive = performance.now();
    // One timer per connection, re-armed when it fires rather than on every message: a
    // message only records the time.
    this.idleTimer = this.armIdle(this.idleMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      clearTimeout(this.idleTimer);
      this.onClose();
    });
  }

  private armIdle(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.onIdleTimer(), ms);
    timer.unref();
    return timer;
  }

  private onIdleTimer(): void {
    if (this.closed) return;
    if (this.inflight > 0) {
      // Never idle while queries wait; the last answer starts the idle period.
      this.idleTimer = this.armIdle(this.idleMs);
      return;
    }
    const left = this.lastActive + this.idleMs - performance.now();
    if (left > 0) {
      this.idleTimer = this.armIdle(Math.ceil(left));
      return;
    }
    this.destroy();
  }

  private onData(chunk: Buffer): void {
    const head = this.pending;
    if (head === null) {
      this.pending = chunk;
    } else {
      // Copy once the message is whole, not once per chunk: a 64 KiB frame trickled a byte per
      // segment would otherwise cost gigabytes of copying.
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      // (A PROXY header still arriving is no frame: it is parsed on every chunk, and bounded.)
      if (
        !this.awaitingProxyHeader &&
        head.length >= 2 &&
        head.length + this.partBytes < 2 + head.readUInt16BE(0)
      )
        return;
      this.parts.unshift(head);
      this.pending = Buffer.concat(this.parts, head.length + this.partBytes);
      this.parts = [];
      this.partBytes = 0;
    }
    this.parse();
  }

  /** Hand every complete message in `pending` to the entry, up to the in-flight cap. */
  private parse(): void {
    let buf = this.pending;
    if (buf === null) return;
    if (this.awaitingProxyHeader) {
      // Until the whole header is here nothing is a query. PROXY_V2_MAX_SIZE bounds what is
      // buffered; a forwarder that stalls mid-header is cut by the idle timer.
      const header = parseProxyV2(buf, 'stream');
      if (header === PROXY_INCOMPLETE) return;
      if (header === PROXY_INVALID) {
        this.entry.proxyProtocolError();
        this.pending = null;
        this.destroy();
        return;
      }
      this.awaitingProxyHeader = false;
      if (header.sourceAddress !== null) {
        this.client = header.sourceAddress;
        this.via = this.remoteAddress;
      }
      this.ecsTrusted = trusts(this.ecsFrom, this.client);
      buf = buf.subarray(header.length);
    }
    while (buf.length >= 2) {
      if (this.inflight >= this.maxInflight) {
        // One connection must not take all of max_inflight: read nothing more until answers
        // drain. What is already read waits here (at most one read's worth).
        this.blocked = true;
        this.socket.pause();
        break;
      }
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      // subarray shares memory with the read chunk; the entry never mutates the query.
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      this.lastActive = performance.now();
      if (!this.onMessage(msg) || this.draining) {
        this.pending = null;
        return;
      }
    }
    this.pending = buf.length > 0 ? buf : null;
  }

  /** false when the connection was closed for bad input. */
  private onMessage(msg: Buffer): boolean {
    const result = this.entry.handle(
      msg,
      this.remoteAddress,
      this.remotePort,
      'tcp',
      this.sink,
      this.client,
      this.via,
      this.ecsTrusted,
    );
    if (result === PENDING) {
      this.inflight++;
      return true;
    }
    return this.reply(result);
  }

  /** Bound once per connection: answers that were not ready at once arrive here. */
  private readonly sink = (answer: StageResult): void => {
    this.inflight--;
    this.lastActive = performance.now();
    if (!this.reply(answer)) return;
    if (this.blocked && this.inflight < this.maxInflight && !this.draining) {
      this.blocked = false;
      this.parse();
      if (!this.blocked && !this.closed) this.socket.resume();
    }
  };

  private reply(result: EntryResult): boolean {
    if (result === MALFORMED) {
      this.destroy();
      return false;
    }
    if (this.closed) return false;
    if (result !== null) {
      const framed = Buffer.allocUnsafe(2 + result.length);
      framed.writeUInt16BE(result.length, 0);
      result.copy(framed, 2);
      this.socket.write(framed);
      if (this.socket.writableLength > MAX_PENDING_WRITE_BYTES) {
        this.destroy();
        return false;
      }
    }
    if (this.draining && this.inflight === 0) this.finish();
    return true;
  }

  /** Read no more; close once the queries in flight are answered. */
  drain(): void {
    this.draining = true;
    this.socket.pause();
    if (this.inflight === 0) this.finish();
  }

  /** Send what is queued, then close without waiting for the client to close its side. */
  private finish(): void {
    if (this.closed) return;
    this.socket.end(() => this.destroy());
  }

  destroy(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.socket.destroy();
  }
}
