// A UDP listener: one datagram in, at most one datagram out, sized by the entry.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../log.js';
import { type EntryResult, MALFORMED, PENDING, type QueryEntry } from '../pipeline/entry.js';
import type { StageResult } from '../pipeline/stage.js';
import { ListenError } from './errors.js';

export class UdpListener {
  private socket: dgram.Socket | null = null;
  private boundPort = 0;

  constructor(
    readonly address: string,
    readonly port: number,
    private readonly entry: QueryEntry,
    private readonly logger: Logger,
  ) {}

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
        // Socket errors after bind (ICMP unreachable bursts, EMSGSIZE) are per packet; log, keep serving.
        socket.on('error', (err) => this.logger.warn({ err, listener: 'udp' }, 'udp socket error'));
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
    const result = this.entry.handle(msg, address, port, 'udp', this.sink);
    if (result !== PENDING) send(socket, result, address, port);
  }

  /** Bound once: where answers that were not ready at once are sent from. */
  private readonly sink = (answer: StageResult, address: string, port: number): void => {
    if (this.socket !== null) send(this.socket, answer, address, port);
  };

  /** Stop receiving; answers still pending are dropped by the closed socket (UDP has no connection to drain). */
  close(_graceMs = 0): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
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
