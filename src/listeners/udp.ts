// A UDP listener: one datagram in, at most one datagram out, sized by the entry.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { parseProxyV2 } from '../identity/proxy-v2.js';
import { type ListenerTrust, TRUST_NOBODY, trusts } from '../identity/trust.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../log-throttle.js';
import { type EntryResult, MALFORMED, PENDING, type QueryEntry } from '../pipeline/entry.js';
import type { StageResult } from '../pipeline/stage.js';
import { ListenError } from './errors.js';

/** Socket errors of one kind are logged at most once per this many ms (with a count). */
export const UDP_ERROR_LOG_INTERVAL_MS = 10_000;

export class UdpListener {
  private socket: dgram.Socket | null = null;
  private boundPort = 0;
  /** false once close() began: datagrams are no longer taken, answers still go out. */
  private accepting = true;
  /** Queries of this listener waiting on a stage; bounded by limits.max_inflight. */
  private inflight = 0;
  /** Called when `inflight` drops to 0 while closing. */
  private onDrained: (() => void) | null = null;
  private closing: Promise<void> | null = null;
  private readonly socketErrors: ThrottledLog;
  /** Who may name the client (PROXY v2, ECS); replaced when a reload changes the listener's keys. */
  trust: ListenerTrust = TRUST_NOBODY;

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly entry: QueryEntry,
    logger: Logger,
    errorLogIntervalMs = UDP_ERROR_LOG_INTERVAL_MS,
  ) {
    this.socketErrors = new ThrottledLog(
      logger.child({ listener: 'udp', address, port }),
      'udp socket error',
      errorLogIntervalMs,
    );
  }

  /** Queries taken by this listener and not answered yet. */
  get inFlight(): number {
    return this.inflight;
  }

  get localPort(): number {
    return this.boundPort;
  }

  listen(): Promise<void> {
    const socket = dgram.createSocket({
      type: isIPv6(this.address) ? 'udp6' : 'udp4',
      reuseAddr: false,
      lookup: literalLookup,
    });
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        socket.close();
        reject(new ListenError('udp', this.address, this.port, err));
      };
      socket.once('error', onError);
      // Not exclusive: in a cluster worker the socket is the primary's one handle, shared by
      // every worker (the kernel hands each datagram to one of them); outside a cluster the
      // flag does nothing.
      socket.bind({ port: this.port, address: this.address, exclusive: false }, () => {
        socket.off('error', onError);
        // Socket errors after bind (ICMP unreachable bursts, EMSGSIZE) are per packet: keep
        // serving, and log each kind once per interval with a count, not once per packet.
        socket.on('error', (err: NodeJS.ErrnoException) =>
          this.socketErrors.warn(err.code ?? 'unknown', { err }),
        );
        try {
          socket.setRecvBufferSize(4 * 1024 * 1024);
          socket.setSendBufferSize(4 * 1024 * 1024);
        } catch {
          // The kernel caps these (net.core.rmem_max); the defaults still work.
        }
        socket.on('message', (msg, rinfo) => this.onMessage(socket, msg, rinfo.address, rinfo.port));
        this.boundPort = socket.address().port;
        this.socket = socket;
        resolve();
      });
    });
  }

  private onMessage(socket: dgram.Socket, msg: Buffer, address: string, port: number): void {
    if (!this.accepting) return;
    const trust = this.trust;
    let result: ReturnType<QueryEntry['handle']>;
    if (trust === TRUST_NOBODY) {
      result = this.entry.handle(msg, address, port, 'udp', this.sink);
    } else {
      let query = msg;
      let client = address;
      let via: string | null = null;
      if (trusts(trust.proxyFrom, address)) {
        const header = parseProxyV2(msg, 'dgram');
        if (typeof header !== 'object') {
          this.entry.proxyProtocolError();
          return;
        }
        query = msg.subarray(header.length);
        if (header.sourceAddress !== null) {
          client = header.sourceAddress;
          via = address;
        }
      }
      // The answer goes back to the datagram's source (the forwarder), without a header.
      result = this.entry.handle(
        query,
        address,
        port,
        'udp',
        this.sink,
        client,
        via,
        trusts(trust.ecsFrom, client),
      );
    }
    if (result === PENDING) this.inflight++;
    else send(socket, result, address, port);
  }

  /** Bound once: where answers that were not ready at once are sent from. */
  private readonly sink = (answer: StageResult, address: string, port: number): void => {
    this.inflight--;
    if (this.socket !== null) send(this.socket, answer, address, port);
    if (this.inflight === 0 && this.onDrained !== null) this.onDrained();
  };

  /**
   * Stop taking datagrams (what arrives now is dropped unread), keep the socket until the
   * queries already taken are answered or `graceMs` passed, then close it: the answers go
   * out from the address the client asked.
   */
  close(graceMs = 0): Promise<void> {
    this.closing ??= this.drainAndClose(graceMs);
    return this.closing;
  }

  private async drainAndClose(graceMs: number): Promise<void> {
    this.accepting = false;
    const socket = this.socket;
    if (!socket) return;
    if (this.inflight > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.onDrained = done;
      });
      this.onDrained = null;
    }
    this.socket = null;
    this.socketErrors.flush();
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

/**
 * Answers only ever go to the IP literal a query came from. dgram resolves every send
 * target through dns.lookup, which for a literal still costs a regex and a nextTick per
 * packet; this answers synchronously (measured: see the commit that introduced it).
 */
function literalLookup(
  address: string,
  family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, typeof family === 'number' ? family : address.includes(':') ? 6 : 4);
}

function send(socket: dgram.Socket, result: EntryResult, address: string, port: number): void {
  if (result === null || result === MALFORMED) return;
  try {
    socket.send(result, port, address);
  } catch {
    // Socket closed by a reload or shutdown between query and answer: nothing to send on.
  }
}
