// Real DNS clients for tests: UDP and TCP queries from a chosen loopback source address,
// with bounded timeouts. Messages are built and decoded with dns-packet.
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface QueryOptions {
  /** Source address to bind, e.g. 127.0.0.2 to act as another client network. */
  from?: string;
  id?: number;
  type?: string;
  edns?: number | false;
  timeoutMs?: number;
  dnssecOk?: boolean;
}

let nextId = 1;

/** The RCODE name dns-packet decoded (e.g. 'NOERROR'), or undefined for no answer. */
export function rcodeName(p: dnsPacket.Packet | null): string | undefined {
  return (p as { rcode?: string } | null)?.rcode;
}

export function encodeQuery(name: string, opts: QueryOptions = {}): Buffer {
  const additionals: dnsPacket.Answer[] = [];
  if (opts.edns) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: opts.edns,
      flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
    } as unknown as dnsPacket.Answer);
  }
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? nextId++ & 0xffff,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: (opts.type ?? 'A') as dnsPacket.RecordType, name, class: 'IN' }],
    additionals,
  });
}

/** Send raw bytes over UDP and return the first datagram back, or null on timeout. */
export function udpExchange(port: number, msg: Buffer, opts: QueryOptions = {}): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, opts.timeoutMs ?? 2000);
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
    socket.on('message', (data) => {
      clearTimeout(timer);
      socket.close();
      resolve(data);
    });
    socket.bind(0, opts.from ?? '127.0.0.1', () => socket.send(msg, port, '127.0.0.1'));
  });
}

export async function udpQuery(
  port: number,
  name: string,
  opts: QueryOptions = {},
): Promise<dnsPacket.Packet | null> {
  const raw = await udpExchange(port, encodeQuery(name, opts), opts);
  return raw ? dnsPacket.decode(raw) : null;
}

/** A TCP client connection that can pipeline many queries and collects framed answers. */
export class TcpClient {
  readonly answers: Buffer[] = [];
  closed = false;
  private pending = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 2) {
        const len = this.pending.readUInt16BE(0);
        if (this.pending.length < 2 + len) break;
        this.answers.push(this.pending.subarray(2, 2 + len));
        this.pending = this.pending.subarray(2 + len);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, from = '127.0.0.1'): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
      socket.once('connect', () => resolve(new TcpClient(socket)));
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(msg: Buffer): void {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    this.socket.write(Buffer.concat([len, msg]));
  }

  /** Wait until `n` answers arrived, the connection closed, or `timeoutMs` passed. */
  async waitFor(n: number, timeoutMs = 3000): Promise<Buffer[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.answers;
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function tcpQuery(
  port: number,
  name: string,
  opts: QueryOptions = {},
): Promise<dnsPacket.Packet | null> {
  const client = await TcpClient.connect(port, opts.from);
  try {
    client.send(encodeQuery(name, opts));
    const answers = await client.waitFor(1, opts.timeoutMs ?? 2000);
    return answers.length > 0 ? dnsPacket.decode(answers[0]) : null;
  } finally {
    client.close();
  }
}
