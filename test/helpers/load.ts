// An open-loop UDP load generator for fault and soak runs: queries at a fixed rate from
// loopback, each answer matched to its query by (socket, ID), latencies and outcomes counted
// per labelled window, and a query unanswered after `lostAfterMs` counted lost.
import dgram from 'node:dgram';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { encodeQuery } from './dns-client.js';

export interface LoadOptions {
  readonly port: number;
  /** Local addresses to send from; `socketsPerSource` sockets each (default 127.0.0.1 × 4). */
  readonly sources?: readonly string[];
  readonly socketsPerSource?: number;
  /** The name of query number `seq`. */
  readonly name: (seq: number) => string;
  readonly type?: string;
  /** EDNS payload size to advertise, or false (default 1232). */
  readonly edns?: number | false;
  /** A query unanswered this long after it was sent counts as lost. */
  readonly lostAfterMs: number;
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
/** Width of one timeline bucket. */
export const BUCKET_MS = 100;
/** Timeline buckets kept (100 ms each: 2 hours); later queries are still counted in windows. */
const MAX_BUCKETS = 72_000;

export interface WindowStats {
  readonly label: string;
  readonly sent: number;
  readonly answered: number;
  readonly lost: number;
  /** Answers by RCODE name; also counts answers that came after the query was counted lost. */
  readonly byRcode: Readonly<Record<string, number>>;
  /** Answers that arrived after `lostAfterMs` (already counted lost). */
  readonly late: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Outcomes of the queries sent during one BUCKET_MS slice of time. */
export interface Bucket {
  /** ms since the load started. */
  readonly at: number;
  sent: number;
  noerror: number;
  servfail: number;
  other: number;
  lost: number;
}

class Window {
  sent = 0;
  answered = 0;
  lost = 0;
  late = 0;
  readonly byRcode = new Map<string, number>();
  readonly latency: RecordableHistogram = createHistogram();
  constructor(readonly label: string) {}

  stats(): WindowStats {
    const ms = (ns: number) => (this.answered === 0 ? 0 : Number((ns / 1e6).toFixed(2)));
    return {
      label: this.label,
      sent: this.sent,
      answered: this.answered,
      lost: this.lost,
      byRcode: Object.fromEntries(this.byRcode),
      late: this.late,
      p50Ms: ms(this.latency.percentile(50)),
      p99Ms: ms(this.latency.percentile(99)),
      maxMs: ms(this.latency.max),
    };
  }
}

/** One socket's queries in flight, by ID (IDs are handed out in turn, so reuse is 65,536 queries away). */
class Slots {
  readonly sentAt = new Float64Array(65536);
  /** Window index + 1 of the query waiting on this ID; 0 when none is. */
  readonly window = new Uint16Array(65536);
  readonly bucket = new Int32Array(65536);
  next = 0;
}

export class UdpLoad {
  private readonly sockets: dgram.Socket[] = [];
  private readonly slots: Slots[] = [];
  /** One per mark(): as many as the caller labels (a handful per fault, a few per soak). */
  private readonly windows: Window[] = [];
  private current: Window;
  /**
   * Send order, for the lost-query sweep: socket index << 16 | ID, and when it was sent. Holds
   * about rate × lostAfterMs entries: the sweep consumes the head, and the consumed part is
   * cut off once it exceeds 100,000.
   */
  private queue: number[] = [];
  private queueAt: number[] = [];
  private queueHead = 0;
  /** Outcomes per BUCKET_MS of send time; at most MAX_BUCKETS (later sends are not bucketed). */
  readonly timeline: Bucket[] = [];
  private readonly started = performance.now();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private rate = 0;
  private rateSince = 0;
  private sentSinceRate = 0;
  private nextSocket = 0;

  constructor(private readonly opts: LoadOptions) {
    this.current = new Window('start');
    this.windows.push(this.current);
  }

  async open(): Promise<void> {
    const sources = this.opts.sources ?? ['127.0.0.1'];
    for (const from of sources) {
      for (let i = 0; i < (this.opts.socketsPerSource ?? 4); i++) {
        const socket = dgram.createSocket('udp4');
        const index = this.sockets.length;
        const slots = new Slots();
        socket.on('error', () => {});
        socket.on('message', (msg) => this.onAnswer(slots, msg));
        await new Promise<void>((resolve) => socket.bind(0, from, () => resolve()));
        try {
          socket.setRecvBufferSize(4 * 1024 * 1024);
        } catch {
          // capped by the kernel
        }
        this.sockets[index] = socket;
        this.slots[index] = slots;
      }
    }
    this.sweeper = setInterval(() => this.sweep(), 50);
  }

  /** Queries sent from now on belong to a new window named `label`. */
  mark(label: string): void {
    this.current = new Window(label);
    this.windows.push(this.current);
  }

  /** Send `qps` queries per second (0 pauses) until stop(). */
  setRate(qps: number): void {
    this.rate = qps;
    this.rateSince = performance.now();
    this.sentSinceRate = 0;
    if (this.timer === null) this.timer = setInterval(() => this.tick(), 2);
  }

  private tick(): void {
    if (this.rate <= 0) return;
    const due = Math.floor(((performance.now() - this.rateSince) / 1000) * this.rate);
    // a late turn sends at most 20 ms worth at once
    let n = Math.min(due - this.sentSinceRate, Math.max(1, Math.ceil(this.rate / 50)));
    for (; n > 0; n--) this.sendOne();
  }

  private bucketAt(now: number): number {
    const b = Math.floor((now - this.started) / BUCKET_MS);
    if (b >= MAX_BUCKETS) return -1;
    while (this.timeline.length <= b) {
      this.timeline.push({
        at: this.timeline.length * BUCKET_MS,
        sent: 0,
        noerror: 0,
        servfail: 0,
        other: 0,
        lost: 0,
      });
    }
    return b;
  }

  private sendOne(): void {
    const s = this.nextSocket;
    this.nextSocket = (s + 1) % this.sockets.length;
    const slots = this.slots[s];
    const id = slots.next;
    slots.next = (id + 1) & 0xffff;
    const now = performance.now();
    if (slots.window[id] !== 0) this.countLost(slots, id); // 65,536 queries later, still unanswered
    const w = this.windows.length - 1;
    slots.sentAt[id] = now;
    slots.window[id] = w + 1;
    const b = this.bucketAt(now);
    slots.bucket[id] = b;
    if (b >= 0) this.timeline[b].sent++;
    this.current.sent++;
    this.sentSinceRate++;
    this.queue.push((s << 16) | id);
    this.queueAt.push(now);
    const query = encodeQuery(this.opts.name(this.seq++), {
      id,
      type: this.opts.type ?? 'A',
      edns: this.opts.edns ?? 1232,
    });
    this.sockets[s].send(query, this.opts.port, '127.0.0.1');
  }

  private countLost(slots: Slots, id: number): void {
    const w = this.windows[slots.window[id] - 1];
    w.lost++;
    const b = slots.bucket[id];
    if (b >= 0) this.timeline[b].lost++;
    slots.window[id] = 0;
  }

  private onAnswer(slots: Slots, msg: Buffer): void {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    const wi = slots.window[id];
    const rcode = RCODES[msg[3] & 0x0f] ?? `RCODE${msg[3] & 0x0f}`;
    if (wi === 0) {
      // answered after it was counted lost (or answered twice): counted, not timed
      this.current.late++;
      return;
    }
    slots.window[id] = 0;
    const w = this.windows[wi - 1];
    w.answered++;
    w.byRcode.set(rcode, (w.byRcode.get(rcode) ?? 0) + 1);
    const ms = performance.now() - slots.sentAt[id];
    w.latency.record(Math.max(1, Math.round(ms * 1e6)));
    const b = slots.bucket[id];
    if (b >= 0) {
      const bucket = this.timeline[b];
      if (rcode === 'NOERROR') bucket.noerror++;
      else if (rcode === 'SERVFAIL') bucket.servfail++;
      else bucket.other++;
    }
  }

  private sweep(): void {
    const limit = performance.now() - this.opts.lostAfterMs;
    while (this.queueHead < this.queue.length && this.queueAt[this.queueHead] <= limit) {
      const key = this.queue[this.queueHead];
      const slots = this.slots[key >>> 16];
      const id = key & 0xffff;
      // still waiting, and not reused by a newer query since
      if (slots.window[id] !== 0 && slots.sentAt[id] === this.queueAt[this.queueHead])
        this.countLost(slots, id);
      this.queueHead++;
    }
    if (this.queueHead > 100_000) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueAt = this.queueAt.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** ms since the load started (the timeline's clock). */
  now(): number {
    return performance.now() - this.started;
  }

  /** The local ports of the sending sockets (e.g. to read their drop counters in /proc/net/udp). */
  localPorts(): number[] {
    return this.sockets.map((s) => s.address().port);
  }

  get totalSent(): number {
    return this.seq;
  }

  /** Stop sending; wait until every query is answered or counted lost; close the sockets. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.rate = 0;
    await new Promise((r) => setTimeout(r, this.opts.lostAfterMs + 100));
    this.sweep();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    for (const s of this.sockets) s.close();
  }

  /** Statistics of every window with this label (merged), or of all windows when omitted. */
  stats(label?: string): WindowStats[] {
    return this.windows.filter((w) => label === undefined || w.label === label).map((w) => w.stats());
  }

  window(label: string): WindowStats {
    const found = this.windows.filter((w) => w.label === label);
    if (found.length !== 1) throw new Error(`${found.length} windows named ${label}`);
    return found[0].stats();
  }

  /**
   * The start (ms, timeline clock) of the first bucket at or after `from` from which on every
   * query sent was answered NOERROR for at least `holdMs`; null if there is none.
   */
  recoveredAt(from: number, holdMs = 1000): number | null {
    const first = Math.floor(from / BUCKET_MS);
    const need = Math.ceil(holdMs / BUCKET_MS);
    let run = 0;
    for (let b = first; b < this.timeline.length; b++) {
      const k = this.timeline[b];
      const clean = k.sent > 0 && k.noerror === k.sent;
      run = clean ? run + 1 : 0;
      if (run >= need) return (b - need + 1) * BUCKET_MS;
    }
    return null;
  }
}
