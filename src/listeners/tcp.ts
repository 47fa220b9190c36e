// A TCP listener per RFC 7766: length-prefixed messages, many queries per connection
// answered as they complete, an idle timeout and a connection cap.
import net from 'node:net';
import type { Logger } from '../log.js';
import { type EntryResult, MALFORMED, PENDING, type QueryEntry } from '../pipeline/entry.js';
import type { StageResult } from '../pipeline/stage.js';
import { ListenError } from './errors.js';

export interface TcpLimits {
  readonly maxTcpConnections: number;
  readonly tcpIdleTimeoutMs: number;
}

/** A client that stops reading may leave at most this many answer bytes queued before it is cut. */
const MAX_PENDING_WRITE_BYTES = 1 << 20;

export class TcpListener {
  private server: net.Server | null = null;
  /** Open connections; bounded by `maxTcpConnections`. */
  private readonly connections = new Set<Connection>();
  private boundPort = 0;

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly entry: QueryEntry,
    private readonly limits: () => TcpLimits,
    private readonly logger: Logger,
  ) {}

  get localPort(): number {
    return this.boundPort;
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
        server.on('error', (err) => this.logger.warn({ err, listener: 'tcp' }, 'tcp server error'));
        this.boundPort = (server.address() as net.AddressInfo).port;
        this.server = server;
        resolve();
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    const limits = this.limits();
    if (this.connections.size >= limits.maxTcpConnections) {
      // Over the cap: close at once rather than let the client wait on a queue.
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.entry, limits.tcpIdleTimeoutMs, () =>
      this.connections.delete(conn),
    );
    this.connections.add(conn);
  }

  /**
   * Stop accepting; open connections answer what they have in flight, then close.
   * Resolves when every connection is gone or `graceMs` passed (then they are cut).
   */
  async close(graceMs = 0): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) server.close();
    for (const conn of this.connections) conn.drain();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const conn of this.connections) conn.destroy();
    this.connections.clear();
  }
}

class Connection {
  private pending: Buffer | null = null;
  /** Read once: the getters are native calls. */
  private readonly remoteAddress: string;
  private readonly remotePort: number;
  private inflight = 0;
  private draining = false;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly entry: QueryEntry,
    idleTimeoutMs: number,
    private readonly onClose: () => void,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.setTimeout(idleTimeoutMs);
    socket.on('timeout', () => {
      if (this.inflight === 0) socket.end();
    });
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.onClose();
    });
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      // subarray shares memory with the read chunk; the entry never mutates the query.
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      if (!this.onMessage(msg)) return;
    }
    this.pending = buf.length > 0 ? buf : null;
  }

  /** false when the connection was closed for bad input. */
  private onMessage(msg: Buffer): boolean {
    const result = this.entry.handle(msg, this.remoteAddress, this.remotePort, 'tcp', this.sink);
    if (result === PENDING) {
      this.inflight++;
      return true;
    }
    return this.reply(result);
  }

  /** Bound once per connection: answers that were not ready at once arrive here. */
  private readonly sink = (answer: StageResult): void => {
    this.inflight--;
    this.reply(answer);
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
      if (this.socket.writableLength > MAX_PENDING_WRITE_BYTES) this.destroy();
    }
    if (this.draining && this.inflight === 0) this.socket.end();
    return true;
  }

  drain(): void {
    this.draining = true;
    this.socket.pause();
    if (this.inflight === 0) this.socket.end();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}
