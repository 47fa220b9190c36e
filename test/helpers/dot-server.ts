// An in-process DNS-over-TLS server on loopback for tests: answers through a pluggable
// function, counts what it sees, and can misbehave on request (delay, drop, close,
// packed or split answers, answers to the wrong question).
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import dnsPacket, { type DecodedPacket, type Packet } from 'dns-packet';

/** Returns the answer to send, or null to send nothing. */
export type AnswerFn = (query: DecodedPacket) => Packet | null;

export interface DotBehaviour {
  answer: AnswerFn;
  /** Wait this long before each answer. */
  delayMs: number;
  /** Accept queries but never answer them. */
  drop: boolean;
  /** Close each connection after answering this many of its queries (0 = never). */
  closeAfter: number;
  /** Hold answers until this many are ready, then send them in one write (one TLS record). */
  pack: number;
  /** Send each answer in three writes a few ms apart: its first byte, a middle part, the rest. */
  split: boolean;
  /** 'before': first send an answer to another question with the same ID; 'instead': only that. */
  wrongQuestion: 'no' | 'before' | 'instead';
}

export interface DotServerOptions extends Partial<DotBehaviour> {
  /** PEM private key and certificate (chain) the server presents. */
  key: string;
  cert: string;
}

export interface DotServer {
  readonly address: string;
  readonly port: number;
  /** "127.0.0.1:port", the id an upstream server config would carry. */
  readonly id: string;
  /** Knobs; change them at any time, they apply to the next query. */
  readonly behaviour: DotBehaviour;
  /** TLS connections accepted (handshake completed). */
  readonly connections: number;
  /** Connections currently open. */
  readonly openConnections: number;
  /** Queries received, on all connections. */
  readonly queries: number;
  /** Names queried, in arrival order (first MAX_RECORDED kept). */
  readonly names: readonly string[];
  /** Size of every data chunk read, in order (first MAX_RECORDED kept): shows TLS record splits. */
  readonly chunkSizes: readonly number[];
  /** Every query message exactly as received (without its length prefix; first MAX_RECORDED kept). */
  readonly rawQueries: readonly Buffer[];
  close(): Promise<void>;
}

/** Bound of the `names` and `chunkSizes` logs. */
export const MAX_RECORDED = 10_000;
/** Delay between the pieces of a split answer. */
const SPLIT_GAP_MS = 5;
/** A packed batch that never fills up is sent anyway after this long. */
const PACK_FLUSH_MS = 50;

/** A 192.0.2.1 (AAAA 2001:db8::1) with TTL 300 for any name; NXDOMAIN for names under `nx`. */
export const defaultAnswer: AnswerFn = (query) => {
  const q = query.questions?.[0];
  const base: Packet = {
    type: 'response',
    id: query.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: query.questions,
  };
  if (q === undefined) return base;
  const lower = q.name.toLowerCase();
  if (lower === 'nx' || lower.endsWith('.nx')) return { ...base, flags: (base.flags ?? 0) | 3 };
  if (q.type === 'A') return { ...base, answers: [{ name: q.name, type: 'A', ttl: 300, data: '192.0.2.1' }] };
  if (q.type === 'AAAA') {
    return { ...base, answers: [{ name: q.name, type: 'AAAA', ttl: 300, data: '2001:db8::1' }] };
  }
  return base;
};

function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export async function startDotServer(opts: DotServerOptions): Promise<DotServer> {
  const behaviour: DotBehaviour = {
    answer: opts.answer ?? defaultAnswer,
    delayMs: opts.delayMs ?? 0,
    drop: opts.drop ?? false,
    closeAfter: opts.closeAfter ?? 0,
    pack: opts.pack ?? 0,
    split: opts.split ?? false,
    wrongQuestion: opts.wrongQuestion ?? 'no',
  };
  const sockets = new Set<TLSSocket>();
  const timers = new Set<NodeJS.Timeout>();
  const names: string[] = [];
  const chunkSizes: number[] = [];
  const rawQueries: Buffer[] = [];
  const stats = { connections: 0, queries: 0 };

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const server = tls.createServer({ key: opts.key, cert: opts.cert }, (socket) => {
    stats.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let partial: Buffer | null = null;
    let answered = 0;
    let closing = false;
    let packed: Buffer[] = [];

    const flushPacked = () => {
      if (packed.length === 0 || socket.destroyed) return;
      socket.write(Buffer.concat(packed));
      packed = [];
    };

    // Pieces of split answers, written one per SPLIT_GAP_MS in order so answers never interleave.
    const pieces: Buffer[] = [];
    const pump = () => {
      const piece = pieces.shift();
      if (piece === undefined || socket.destroyed) return;
      socket.write(piece);
      if (pieces.length > 0) later(SPLIT_GAP_MS, pump);
      else if (closing) socket.end();
    };

    const send = (msg: Buffer) => {
      if (socket.destroyed || socket.writableEnded) return;
      const framed = frame(msg);
      if (behaviour.pack > 1) {
        packed.push(framed);
        if (packed.length >= behaviour.pack) flushPacked();
        else if (packed.length === 1) later(PACK_FLUSH_MS, flushPacked);
      } else if (behaviour.split) {
        const mid = 1 + Math.floor((framed.length - 1) / 2);
        pieces.push(framed.subarray(0, 1), framed.subarray(1, mid), framed.subarray(mid));
        if (pieces.length === 3) pump();
      } else {
        socket.write(framed);
      }
    };

    const respond = (query: DecodedPacket) => {
      if (closing || socket.destroyed) return;
      if (behaviour.wrongQuestion !== 'no') {
        const wrong = behaviour.answer({
          ...query,
          questions: [{ name: 'wrong-question.invalid', type: 'A', class: 'IN' }],
        });
        if (wrong !== null) send(dnsPacket.encode(wrong));
        if (behaviour.wrongQuestion === 'instead') return;
      }
      const answer = behaviour.answer(query);
      if (answer !== null) send(dnsPacket.encode(answer));
      answered++;
      if (behaviour.closeAfter > 0 && answered >= behaviour.closeAfter) {
        closing = true;
        flushPacked();
        if (pieces.length === 0) socket.end();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (chunkSizes.length < MAX_RECORDED) chunkSizes.push(chunk.length);
      let buf = partial === null ? chunk : Buffer.concat([partial, chunk]);
      partial = null;
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        let query: DecodedPacket;
        try {
          query = dnsPacket.decode(msg);
        } catch {
          socket.destroy();
          return;
        }
        stats.queries++;
        if (rawQueries.length < MAX_RECORDED) rawQueries.push(Buffer.from(msg));
        if (names.length < MAX_RECORDED) names.push(query.questions?.[0]?.name ?? '');
        if (behaviour.drop) continue;
        if (behaviour.delayMs > 0) later(behaviour.delayMs, () => respond(query));
        else respond(query);
      }
      if (buf.length > 0) partial = buf;
    });
  });
  server.on('tlsClientError', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;

  return {
    address,
    port,
    id: `${address}:${port}`,
    behaviour,
    get connections() {
      return stats.connections;
    },
    get openConnections() {
      return sockets.size;
    },
    get queries() {
      return stats.queries;
    },
    names,
    chunkSizes,
    rawQueries,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
