// Abusive clients and well-behaved probes over real loopback sockets, shared by the abuse
// integration tests (correctness) and bench/abuse.ts (figures). Every attacker is bounded in
// count and time; every probe records what it sent, what came back and how long it took.
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodeQuery } from './dns-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `count` loopback source addresses from 127.0.0.`first` on (wrapping into 127.0.x.y). */
export function loopbackSources(count: number, first = 10): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = first + i;
    out.push(`127.0.${(n >>> 8) & 255}.${n & 255}`);
  }
  return out;
}

function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/** A client socket that never closes its side; `ended` once the server closed or reset it. */
interface Held {
  readonly socket: net.Socket;
  ended: boolean;
}

function connectHeld(port: number, host: string, from: string | undefined): Promise<Held | null> {
  return new Promise((resolve) => {
    const held: Held = {
      socket: net.connect({ port, host, localAddress: from, allowHalfOpen: true }),
      ended: false,
    };
    const end = () => {
      held.ended = true;
    };
    held.socket.on('end', end);
    held.socket.on('close', end);
    held.socket.on('error', () => {
      end();
      resolve(null);
    });
    held.socket.once('connect', () => resolve(held));
  });
}

/** `count` held connections, opened `batch` at a time from `sources` (round robin). */
async function connectMany(
  port: number,
  count: number,
  host: string,
  sources: string[] | undefined,
  batch = 200,
): Promise<Held[]> {
  const held: Held[] = [];
  for (let i = 0; i < count; i += batch) {
    const round = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_, k) =>
        connectHeld(port, host, sources?.[(i + k) % sources.length]),
      ),
    );
    for (const h of round) if (h !== null) held.push(h);
  }
  return held;
}

export interface HeldConnections {
  /** Connections made (the kernel completed the handshake). */
  readonly made: number;
  /** Of those, how many the server has closed so far. */
  closedByServer(): number;
  /** Destroy every socket (the attacker gives up). */
  close(): void;
}

/**
 * `count` TCP connections that send nothing and never close their side, opened `batch` at a
 * time from the given source addresses (round robin).
 */
export async function idleConnections(
  port: number,
  count: number,
  opts: { host?: string; sources?: string[]; batch?: number } = {},
): Promise<HeldConnections> {
  const held = await connectMany(port, count, opts.host ?? '127.0.0.1', opts.sources, opts.batch);
  return {
    made: held.length,
    closedByServer: () => held.filter((h) => h.ended).length,
    close: () => {
      for (const h of held) h.socket.destroy();
    },
  };
}

export interface Slowloris extends HeldConnections {
  /** Bytes trickled in all. */
  bytes(): number;
  /** Resolves when every connection was closed by the server or `maxMs` passed. */
  done: Promise<void>;
}

/**
 * `count` connections that each announce a 512-byte message and then send one byte of it
 * every `everyMs`, never completing it; bounded by `maxMs`.
 */
export async function slowloris(
  port: number,
  count: number,
  opts: { everyMs: number; maxMs: number; host?: string; sources?: string[] },
): Promise<Slowloris> {
  const held = await connectMany(port, count, opts.host ?? '127.0.0.1', opts.sources);
  for (const h of held) if (!h.ended) h.socket.write(Buffer.from([0x02, 0x00]));
  let bytes = 0;
  const started = performance.now();
  const done = (async () => {
    while (performance.now() - started < opts.maxMs && held.some((h) => !h.ended)) {
      for (const h of held) {
        if (h.ended || h.socket.destroyed) continue;
        h.socket.write(Buffer.from([0x41]));
        bytes++;
      }
      await sleep(opts.everyMs);
    }
  })();
  return {
    made: held.length,
    closedByServer: () => held.filter((h) => h.ended).length,
    bytes: () => bytes,
    done,
    close: () => {
      for (const h of held) h.socket.destroy();
    },
  };
}

export interface FloodResult {
  attempts: number;
  /** Connections the server closed within `holdMs` (over the cap, or cut). */
  closedByServer: number;
  /** Connections still open when the attacker let go of them after `holdMs`. */
  held: number;
  /** Connects that failed outright (refused, reset during the handshake). */
  failed: number;
}

/**
 * Connects as fast as `concurrency` allows until `maxAttempts` or `durationMs`; each
 * connection sends nothing and is dropped by the attacker after `holdMs` unless the server
 * closed it first.
 */
export async function connectionFlood(
  port: number,
  opts: {
    maxAttempts: number;
    durationMs: number;
    concurrency: number;
    holdMs: number;
    host?: string;
    sources?: string[];
  },
): Promise<FloodResult> {
  const result: FloodResult = { attempts: 0, closedByServer: 0, held: 0, failed: 0 };
  const started = performance.now();
  const one = async (): Promise<void> => {
    const from = opts.sources?.[result.attempts % opts.sources.length];
    result.attempts++;
    const h = await connectHeld(port, opts.host ?? '127.0.0.1', from);
    if (h === null) {
      result.failed++;
      return;
    }
    const deadline = performance.now() + opts.holdMs;
    while (!h.ended && performance.now() < deadline) await sleep(10);
    if (h.ended) result.closedByServer++;
    else result.held++;
    h.socket.destroy();
  };
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (result.attempts < opts.maxAttempts && performance.now() - started < opts.durationMs) await one();
    }),
  );
  return result;
}

export interface UdpFloodResult {
  sent: number;
  answered: number;
  /** Answers per source address. */
  answeredBy: Map<string, number>;
}

/**
 * One socket per source address, each sending the same query (a cache hit once warm) round
 * robin until `maxPackets` or `durationMs`: paced at `pps` packets per second in all when
 * given, else `burst` packets per source per turn of the event loop (as fast as it goes).
 * Answers are counted until `settleMs` after the last send.
 */
export async function udpFlood(
  port: number,
  sources: string[],
  opts: {
    maxPackets: number;
    durationMs: number;
    pps?: number;
    burst?: number;
    settleMs?: number;
    qname?: string;
  },
): Promise<UdpFloodResult> {
  const result: UdpFloodResult = { sent: 0, answered: 0, answeredBy: new Map() };
  const query = encodeQuery(opts.qname ?? 'flood.example', { id: 4711 });
  const sockets = await Promise.all(
    sources.map(
      (from) =>
        new Promise<dgram.Socket>((resolve, reject) => {
          const s = dgram.createSocket(from.includes(':') ? 'udp6' : 'udp4');
          s.on('message', () => {
            result.answered++;
            result.answeredBy.set(from, (result.answeredBy.get(from) ?? 0) + 1);
          });
          s.once('error', reject);
          s.bind(0, from, () => {
            s.removeListener('error', reject);
            s.on('error', () => {});
            resolve(s);
          });
        }),
    ),
  );
  const started = performance.now();
  const burst = opts.burst ?? 4;
  let next = 0;
  const sendOne = () => {
    const i = next;
    next = (next + 1) % sockets.length;
    sockets[i].send(query, port, sources[i].includes(':') ? '::1' : '127.0.0.1');
    result.sent++;
  };
  while (result.sent < opts.maxPackets && performance.now() - started < opts.durationMs) {
    if (opts.pps !== undefined) {
      const due = Math.min(opts.maxPackets, Math.floor(((performance.now() - started) * opts.pps) / 1000));
      while (result.sent < due) sendOne();
      await sleep(5);
    } else {
      for (let k = 0; k < sockets.length * burst && result.sent < opts.maxPackets; k++) sendOne();
      await new Promise((r) => setImmediate(r));
    }
  }
  await sleep(opts.settleMs ?? 500);
  for (const s of sockets) s.close();
  return result;
}

// ---- well-behaved clients ------------------------------------------------------------------

export interface ProbeStats {
  sent: number;
  answered: number;
  /** Answers that were not NOERROR. */
  errors: number;
  lost: number;
  p50: number;
  p99: number;
  max: number;
}

function summarise(sent: number, latencies: number[], errors: number): ProbeStats {
  const sorted = [...latencies].sort((a, b) => a - b);
  const q = (p: number) =>
    sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    sent,
    answered: latencies.length,
    errors,
    lost: sent - latencies.length,
    p50: q(0.5),
    p99: q(0.99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** A client that keeps asking at a steady rate and times every answer. */
export interface Probe {
  /** Stop sending; resolves once every query is answered or timed out. */
  stop(): Promise<ProbeStats>;
  /**
   * Close the current window and start a new one; the closed window's figures come once its
   * last queries are answered or timed out.
   */
  nextWindow(): Promise<ProbeStats>;
}

type Sender = (id: number, msg: Buffer) => void;

interface Window {
  sent: number;
  latencies: number[];
  errors: number;
  /** Queries of this window not answered yet. */
  waiting: number;
}

/** Paces queries at `qps` (at most `maxQueries`), matches answers by ID, times out after `timeoutMs`. */
function pacedProbe(
  qps: number,
  opts: { maxQueries: number; timeoutMs: number; prefix: string },
  attach: (onAnswer: (msg: Buffer) => void) => Sender,
  detach: () => void,
): Probe {
  /** id → when it was sent and in which window; bounded by qps × timeoutMs. */
  const sentAt = new Map<number, { at: number; window: Window }>();
  const newWindow = (): Window => ({ sent: 0, latencies: [], errors: 0, waiting: 0 });
  let window = newWindow();
  let nextId = 1;
  let stopped = false;
  const send = attach((msg) => {
    const id = msg.readUInt16BE(0);
    const entry = sentAt.get(id);
    if (entry === undefined) return;
    sentAt.delete(id);
    entry.window.waiting--;
    entry.window.latencies.push(performance.now() - entry.at);
    if ((msg[3] & 0x0f) !== 0) entry.window.errors++;
  });
  const started = performance.now();
  let total = 0;
  const timer = setInterval(() => {
    const due = Math.min(opts.maxQueries, Math.floor(((performance.now() - started) * qps) / 1000));
    while (total < due && !stopped) {
      const id = nextId;
      nextId = nextId === 0xffff ? 1 : nextId + 1;
      total++;
      window.sent++;
      window.waiting++;
      sentAt.set(id, { at: performance.now(), window });
      send(id, encodeQuery(`${opts.prefix}${total}.probe.example`, { id }));
    }
    const now = performance.now();
    for (const [id, entry] of sentAt) {
      if (now - entry.at <= opts.timeoutMs) continue;
      sentAt.delete(id);
      entry.window.waiting--;
    }
    if (total >= opts.maxQueries) clearInterval(timer);
  }, 5);
  const settle = async (w: Window): Promise<ProbeStats> => {
    const deadline = performance.now() + opts.timeoutMs + 100;
    while (w.waiting > 0 && performance.now() < deadline) await sleep(10);
    return summarise(w.sent, w.latencies, w.errors);
  };
  return {
    nextWindow: () => {
      const closed = window;
      window = newWindow();
      return settle(closed);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      const stats = await settle(window);
      detach();
      return stats;
    },
  };
}

export interface ProbeOptions {
  qps: number;
  from: string;
  /** Bound on queries sent (default: qps × 120 s). */
  maxQueries?: number;
  timeoutMs?: number;
}

/** UDP queries at a steady rate from one socket on `from`. */
export async function udpProbe(port: number, opts: ProbeOptions): Promise<Probe> {
  const v6 = opts.from.includes(':');
  const socket = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  await new Promise<void>((r) => socket.bind(0, opts.from, () => r()));
  return pacedProbe(
    opts.qps,
    { maxQueries: opts.maxQueries ?? opts.qps * 120, timeoutMs: opts.timeoutMs ?? 2000, prefix: 'u' },
    (onAnswer) => {
      socket.on('message', onAnswer);
      return (_id, msg) => socket.send(msg, port, v6 ? '::1' : '127.0.0.1');
    },
    () => socket.close(),
  );
}

/** TCP queries at a steady rate on one persistent connection from `from`. */
export async function tcpProbe(port: number, opts: ProbeOptions): Promise<Probe> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.from, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  return pacedProbe(
    opts.qps,
    { maxQueries: opts.maxQueries ?? opts.qps * 120, timeoutMs: opts.timeoutMs ?? 2000, prefix: 't' },
    (onAnswer) => {
      let pending = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
          onAnswer(pending.subarray(2, 2 + pending.readUInt16BE(0)));
          pending = pending.subarray(2 + pending.readUInt16BE(0));
        }
      });
      return (_id, msg) => socket.write(frame(msg));
    },
    () => socket.destroy(),
  );
}

/** One new TCP connection per query, at a steady rate, from `from`: what a new client meets. */
export async function newConnectionProbe(port: number, opts: ProbeOptions): Promise<Probe> {
  const open = new Set<net.Socket>();
  return pacedProbe(
    opts.qps,
    { maxQueries: opts.maxQueries ?? opts.qps * 120, timeoutMs: opts.timeoutMs ?? 2000, prefix: 'n' },
    (onAnswer) => (_id, msg) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.from, noDelay: true });
      open.add(socket);
      const done = () => {
        open.delete(socket);
        socket.destroy();
      };
      const timer = setTimeout(done, opts.timeoutMs ?? 2000);
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        open.delete(socket);
      });
      socket.once('connect', () => socket.write(frame(msg)));
      let pending = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        if (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
          onAnswer(pending.subarray(2, 2 + pending.readUInt16BE(0)));
          clearTimeout(timer);
          done();
        }
      });
    },
    () => {
      for (const s of open) s.destroy();
    },
  );
}
