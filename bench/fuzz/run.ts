// The whole-server fuzzer: starts the built gateway (dist/cli.js) with a DoT upstream, sends
// mutated and random packets over UDP and TCP from loopback, checks every reply, samples the
// gateway's RSS, and finishes with a valid query over each transport.
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { makeCerts, type TestPki } from '../../test/helpers/certs.js';
import { rcodeName, tcpQuery, udpQuery } from '../../test/helpers/dns-client.js';
import { serverEntry } from '../../test/helpers/dot-fixture.js';
import { httpGet } from '../../test/helpers/http.js';
import { metricBy, metricValue, scrapeMetrics } from '../../test/helpers/metrics-text.js';
import { freePort } from '../../test/helpers/ports.js';
import { type GatewayProcess, startGateway } from '../../test/helpers/proc.js';
import { RssSampler } from '../../test/helpers/rss.js';
import { startUnbound, type UnboundUpstream, unboundServerEntry, ZONE } from '../../test/helpers/unbound.js';
import { mix, packetAt, Rand } from './packets.js';
import { type EchoUpstreamProcess, spawnEchoUpstream } from './upstream.js';

export interface FuzzOptions {
  /** Packets to send, UDP and TCP together. */
  readonly count: number;
  readonly seed: number;
  /** Share of `count` sent over TCP. */
  readonly tcpShare: number;
  /** UDP packets per second (the sender paces itself; TCP runs alongside, as fast as it goes). */
  readonly pps: number;
  /** TCP connections open at once. */
  readonly tcpConnections: number;
  /** echo: the in-process resolver of ./upstream.ts; unbound: Debian's unbound over DoT. */
  readonly upstream: 'echo' | 'unbound';
  /** The run stops sending after this long, whatever was sent. */
  readonly maxSeconds: number;
  /** Fail when the gateway's RSS goes above this. */
  readonly maxRssMiB: number;
  /** Progress lines; silent when absent. */
  readonly progress?: (line: string) => void;
}

export const DEFAULTS: FuzzOptions = {
  count: 1_000_000,
  seed: 1,
  tcpShare: 0.1,
  pps: 10_000,
  tcpConnections: 32,
  upstream: 'echo',
  maxSeconds: 1800,
  maxRssMiB: 512,
};

export interface Failure {
  readonly transport: 'udp' | 'tcp';
  /** Index of the query packet (rebuild it with packetAt(seed, index)); -1 when none matched. */
  readonly index: number;
  readonly reason: string;
  readonly query: string;
  readonly reply: string;
}

export interface FuzzSummary {
  readonly seed: number;
  readonly sent: { udp: number; tcp: number; tcpConnections: number };
  readonly replies: { udp: number; tcp: number };
  /** Connections the gateway closed before we did (malformed input, as the contract says). */
  readonly tcpClosedByGateway: number;
  readonly failures: number;
  readonly failureReasons: Readonly<Record<string, number>>;
  /** The first few failures, with the bytes involved (hex). */
  readonly failureSamples: readonly Failure[];
  readonly sentByKind: Readonly<Record<string, number>>;
  readonly malformedTotal: number | null;
  readonly responsesByRcode: Readonly<Record<string, number>>;
  /** dns_tool_upstream_requests_total by result (ok, error, timeout). */
  readonly upstreamByResult: Readonly<Record<string, number>>;
  readonly rss: { minMiB: number; maxMiB: number; samples: number; limitMiB: number };
  readonly durationSeconds: number;
  readonly alive: boolean;
  readonly healthz: number;
  readonly after: { udp: string | undefined; tcp: string | undefined };
  readonly exit: { code: number | null; signal: string | null };
  /** True when every check held. */
  readonly ok: boolean;
}

const MAX_FAILURE_SAMPLES = 20;
/** UDP sockets the sender spreads over: IDs are unique per socket among queries in flight. */
const UDP_SOCKETS = 8;
/** Source addresses, so the three policies of the config each get traffic. */
const SOURCES = [
  '127.0.0.1',
  '127.0.0.1',
  '127.0.0.1',
  '127.0.0.1',
  '127.0.0.1',
  '127.0.0.2',
  '127.0.0.2',
  '127.0.0.3',
];
/** How long after the last packet replies are still collected (above limits.timeout_ms). */
const GRACE_MS = 1500;
/** A TCP connection waits at most this long for replies once it has written everything. */
const TCP_QUIET_MS = 900;

function configText(port: number, adminPort: number, servers: string): string {
  return `version: 1
listeners: [{ name: fuzz, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 400
    connections: 2
    servers: [${servers}]
policies:
  - { name: open, clients: [127.0.0.1], cache: true }
  - name: filtered
    clients: [127.0.0.2]
    query_types: { deny: [ANY, TXT, AXFR] }
    domains: { deny: [blocked.fuzz] }
    deny_with: nxdomain
    rate_limit: { qps: 3000, burst: 3000, exceed: truncate }
  - { name: denied, clients: [127.0.0.3], action: deny, deny_with: refused }
cache: { max_entries: 20000 }
limits: { timeout_ms: 600, max_tcp_connections: 64, tcp_idle_timeout_ms: 1000, max_inflight: 2000 }
admin: { address: 127.0.0.1, port: ${adminPort} }
log: { level: info }
`;
}

/** Offset past the question of `msg` (uncompressed name), or -1. */
function questionEnd(msg: Buffer): number {
  let pos = 12;
  for (let guard = 0; guard < 128; guard++) {
    if (pos >= msg.length) return -1;
    const len = msg[pos];
    if (len === 0) return pos + 5 <= msg.length ? pos + 5 : -1;
    if (len > 63) return -1;
    pos += len + 1;
  }
  return -1;
}

function sameBytesIgnoringCase(a: Buffer, b: Buffer, from: number, to: number): boolean {
  if (a.length < to || b.length < to) return false;
  for (let i = from; i < to; i++) {
    let x = a[i];
    let y = b[i];
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/** Why `reply` is not an acceptable answer to `query`, or null when it is. */
export function replyProblem(reply: Buffer, query: Buffer): string | null {
  try {
    dnsPacket.decode(reply);
  } catch (err) {
    return `reply does not parse: ${(err as Error).message}`;
  }
  if (reply.length < 12) return 'reply shorter than a header';
  if (query.length < 12) return 'reply to a packet shorter than a header';
  if (reply.readUInt16BE(0) !== query.readUInt16BE(0)) return 'reply ID differs from the query ID';
  if (!(reply[2] & 0x80)) return 'reply has QR=0';
  if (query[2] & 0x80) return 'reply to a packet with QR=1';
  if (reply.readUInt16BE(4) === 1) {
    const end = questionEnd(reply);
    if (end < 0 || !sameBytesIgnoringCase(reply, query, 12, end))
      return 'reply question differs from the query';
  }
  return null;
}

function hex(b: Buffer | null): string {
  if (b === null) return '';
  return b.length > 300 ? `${b.subarray(0, 300).toString('hex')}…(${b.length} octets)` : b.toString('hex');
}

class Checker {
  failures = 0;
  readonly samples: Failure[] = [];
  /** Failures per reason (a handful of fixed strings, plus dns-packet's messages). */
  readonly reasons = new Map<string, number>();
  fail(transport: 'udp' | 'tcp', index: number, reason: string, query: Buffer | null, reply: Buffer): void {
    this.failures++;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
    if (this.samples.length < MAX_FAILURE_SAMPLES) {
      this.samples.push({ transport, index, reason, query: hex(query), reply: hex(reply) });
    }
  }
}

function withId(bytes: Buffer, id: number): Buffer {
  if (bytes.length >= 2) bytes.writeUInt16BE(id, 0);
  return bytes;
}

/** Per UDP socket: which packet each ID was last used for, and whether it has been answered. */
class UdpSlots {
  readonly index = new Int32Array(65536).fill(-1);
  /** 0 free, 1 waiting, 2 answered. */
  readonly state = new Uint8Array(65536);
  next = 0;
}

async function runUdp(
  opts: FuzzOptions,
  port: number,
  count: number,
  deadline: number,
  checker: Checker,
  kinds: Map<string, number>,
): Promise<{ sent: number; replies: number; sockets: dgram.Socket[] }> {
  const sockets: dgram.Socket[] = [];
  const slots: UdpSlots[] = [];
  let replies = 0;
  for (let s = 0; s < UDP_SOCKETS; s++) {
    const socket = dgram.createSocket('udp4');
    const slot = new UdpSlots();
    socket.on('error', () => {});
    socket.on('message', (reply) => {
      replies++;
      const id = reply.length >= 2 ? reply.readUInt16BE(0) : -1;
      if (id < 0 || slot.state[id] !== 1) {
        const why =
          id >= 0 && slot.state[id] === 2
            ? 'query answered twice'
            : 'reply with an ID no query is waiting for';
        checker.fail('udp', id < 0 ? -1 : slot.index[id], why, null, reply);
        return;
      }
      slot.state[id] = 2;
      const query = withId(packetAt(opts.seed, slot.index[id]).bytes, id);
      const problem = replyProblem(reply, query);
      if (problem !== null) checker.fail('udp', slot.index[id], problem, query, reply);
    });
    await new Promise<void>((resolve) => socket.bind(0, SOURCES[s], () => resolve()));
    try {
      socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      // capped by the kernel; fine
    }
    sockets.push(socket);
    slots.push(slot);
  }
  const started = Date.now();
  let sent = 0;
  while (sent < count && Date.now() < deadline) {
    // At most 5 ms worth of packets per turn: a late turn does not turn into a burst
    const due = Math.min(
      count,
      Math.floor(((Date.now() - started) / 1000) * opts.pps) + 1,
      sent + Math.max(1, Math.ceil(opts.pps / 200)),
    );
    while (sent < due) {
      const index = sent;
      const s = index % UDP_SOCKETS;
      const slot = slots[s];
      const packet = packetAt(opts.seed, index);
      kinds.set(packet.kind, (kinds.get(packet.kind) ?? 0) + 1);
      if (packet.bytes.length >= 12) {
        const id = slot.next;
        slot.next = (slot.next + 1) & 0xffff;
        slot.index[id] = index;
        slot.state[id] = 1;
        withId(packet.bytes, id);
      }
      sockets[s].send(packet.bytes, port, '127.0.0.1');
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return {
    sent,
    get replies() {
      return replies;
    },
    sockets,
  };
}

interface TcpTotals {
  sent: number;
  replies: number;
  connections: number;
  closedByGateway: number;
}

/** How a connection's byte stream ends after its framed messages. */
type Ending = 'complete' | 'partial-frame' | 'oversized-prefix' | 'zero-length' | 'lone-prefix-byte';
const ENDINGS: readonly Ending[] = [
  'complete',
  'complete',
  'complete',
  'complete',
  'complete',
  'partial-frame',
  'oversized-prefix',
  'zero-length',
  'lone-prefix-byte',
];

function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + msg.length);
  out.writeUInt16BE(msg.length & 0xffff, 0);
  msg.copy(out, 2);
  return out;
}

/** One TCP connection: some framed packets written in random pieces, one ending, replies checked. */
async function tcpConnection(
  opts: FuzzOptions,
  port: number,
  r: Rand,
  n: number,
  firstIndex: number,
  totals: TcpTotals,
  checker: Checker,
  kinds: Map<string, number>,
): Promise<void> {
  const firstId = r.int(65536);
  const byId = new Map<number, { index: number; answered: boolean }>();
  const frames: Buffer[] = [];
  for (let k = 0; k < n; k++) {
    const index = firstIndex + k;
    const packet = packetAt(opts.seed, index);
    kinds.set(packet.kind, (kinds.get(packet.kind) ?? 0) + 1);
    const id = (firstId + k) & 0xffff;
    withId(packet.bytes, id);
    if (packet.bytes.length >= 12) byId.set(id, { index, answered: false });
    frames.push(frame(packet.bytes.subarray(0, 0xffff)));
  }
  const ending = r.pick(ENDINGS);
  if (ending === 'partial-frame') {
    const last = frame(packetAt(opts.seed, firstIndex + n).bytes);
    frames.push(last.subarray(0, r.range(1, Math.max(1, last.length - 1))));
  } else if (ending === 'oversized-prefix') {
    frames.push(Buffer.concat([Buffer.from([0xff, 0xff]), r.bytes(r.int(300))]));
  } else if (ending === 'zero-length') {
    frames.push(Buffer.from([0, 0]));
  } else if (ending === 'lone-prefix-byte') {
    frames.push(Buffer.from([r.int(256)]));
  }
  const stream = Buffer.concat(frames);
  const from = SOURCES[r.int(SOURCES.length)];
  totals.connections++;
  totals.sent += n;

  await new Promise<void>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    socket.setNoDelay(true);
    let pending = Buffer.alloc(0);
    let replies = 0;
    let done = false;
    let quiet: NodeJS.Timeout | null = null;
    const finish = (byGateway: boolean) => {
      if (done) return;
      done = true;
      if (byGateway) totals.closedByGateway++;
      if (quiet) clearTimeout(quiet);
      clearTimeout(cap);
      socket.destroy();
      resolve();
    };
    const cap = setTimeout(() => finish(false), 10_000);
    const armQuiet = () => {
      if (quiet) clearTimeout(quiet);
      quiet = setTimeout(() => finish(false), TCP_QUIET_MS);
    };
    socket.on('error', () => finish(true));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const reply = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + reply.length);
        replies++;
        totals.replies++;
        const id = reply.length >= 2 ? reply.readUInt16BE(0) : -1;
        const entry = byId.get(id);
        if (entry === undefined || entry.answered) {
          const why = entry ? 'query answered twice' : 'reply with an ID no query on this connection has';
          checker.fail('tcp', entry?.index ?? -1, why, null, reply);
          continue;
        }
        entry.answered = true;
        const query = withId(packetAt(opts.seed, entry.index).bytes, id);
        const problem = replyProblem(reply, query);
        if (problem !== null) checker.fail('tcp', entry.index, problem, query, reply);
      }
      // every complete frame answered: nothing more can come unless the gateway is broken (an
      // answer to something else, or twice, would have arrived in the same read or before)
      if (replies >= byId.size) finish(false);
      else armQuiet();
    });
    socket.once('connect', async () => {
      // the stream in 1..6 pieces, some an event-loop turn apart
      let at = 0;
      const pieces = r.range(1, 6);
      for (let p = 1; p <= pieces && !done; p++) {
        const to =
          p === pieces ? stream.length : Math.max(at, Math.min(stream.length, r.int(stream.length + 1)));
        if (to > at) {
          socket.write(stream.subarray(at, to));
          at = to;
        }
        if (r.chance(0.5)) await new Promise((res) => setImmediate(res));
      }
      armQuiet();
    });
  });
}

async function runTcp(
  opts: FuzzOptions,
  port: number,
  count: number,
  firstIndex: number,
  deadline: number,
  checker: Checker,
  kinds: Map<string, number>,
): Promise<TcpTotals> {
  const totals: TcpTotals = { sent: 0, replies: 0, connections: 0, closedByGateway: 0 };
  let claimed = 0;
  let connIndex = 0;
  const worker = async () => {
    while (claimed < count && Date.now() < deadline) {
      // each connection's script is a function of (seed, its number), its packets a range of indexes
      const r = new Rand(mix(opts.seed ^ 0x5bd1e995, connIndex++));
      const n = Math.min(count - claimed, r.range(1, 40));
      const start = firstIndex + claimed;
      claimed += n;
      await tcpConnection(opts, port, r, n, start, totals, checker, kinds);
    }
  };
  await Promise.all(Array.from({ length: opts.tcpConnections }, worker));
  return totals;
}

/** Run the fuzzer once; never throws for a gateway misbehaving (that is reported in the summary). */
export async function runFuzz(options: Partial<FuzzOptions> = {}): Promise<FuzzSummary> {
  const opts: FuzzOptions = { ...DEFAULTS, ...options };
  const say = opts.progress ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'dns-tool-fuzz-'));
  let pki: TestPki | null = null;
  let echo: EchoUpstreamProcess | null = null;
  let unbound: UnboundUpstream | null = null;
  let gateway: GatewayProcess | null = null;
  let sampler: RssSampler | null = null;
  let sockets: dgram.Socket[] = [];
  try {
    let servers: string;
    if (opts.upstream === 'unbound') {
      unbound = await startUnbound();
      servers = unboundServerEntry(unbound);
    } else {
      pki = await makeCerts(dir);
      echo = await spawnEchoUpstream(pki.server.keyPath, pki.server.certPath);
      servers = serverEntry(pki, echo.port);
    }
    const port = await freePort();
    const adminPort = await freePort();
    const configPath = join(dir, 'config.yaml');
    await writeFile(configPath, configText(port, adminPort, servers));
    gateway = await startGateway({ args: ['--config', configPath] });
    sampler = new RssSampler(gateway.pid, 250);

    const tcpCount = Math.round(opts.count * opts.tcpShare);
    const udpCount = opts.count - tcpCount;
    const checker = new Checker();
    const kinds = new Map<string, number>();
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const started = Date.now();
    const deadline = started + opts.maxSeconds * 1000;
    say(
      `fuzz: seed ${opts.seed}, ${udpCount} UDP at ${opts.pps}/s and ${tcpCount} TCP packets, upstream ${opts.upstream}`,
    );
    const ticker = setInterval(() => {
      const rss = sampler?.samples.at(-1)?.bytes ?? 0;
      say(
        `  ${Math.round((Date.now() - started) / 1000)} s: failures ${checker.failures}, RSS ${(rss / 1048576).toFixed(1)} MiB`,
      );
    }, 10_000);
    const [udp, tcp] = await Promise.all([
      runUdp(opts, port, udpCount, deadline, checker, kinds),
      runTcp(opts, port, tcpCount, udpCount, deadline, checker, kinds),
    ]);
    sockets = udp.sockets;
    await new Promise((r) => setTimeout(r, GRACE_MS));
    clearInterval(ticker);
    lag.disable();
    say(
      `fuzzer event loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms`,
    );
    const durationSeconds = (Date.now() - started) / 1000;
    sampler.sample();
    sampler.stop();

    const alive = gateway.child.exitCode === null && gateway.child.signalCode === null;
    let healthz = 0;
    let malformedTotal: number | null = null;
    let responsesByRcode: Record<string, number> = {};
    let upstreamByResult: Record<string, number> = {};
    let afterUdp: string | undefined;
    let afterTcp: string | undefined;
    if (alive) {
      healthz = (await httpGet(adminPort, '/healthz').catch(() => ({ status: 0 }))).status;
      const text = await scrapeMetrics(adminPort).catch(() => '');
      malformedTotal = metricValue(text, 'dns_tool_malformed_total');
      responsesByRcode = Object.fromEntries(metricBy(text, 'dns_tool_responses_total', 'rcode'));
      upstreamByResult = Object.fromEntries(metricBy(text, 'dns_tool_upstream_requests_total', 'result'));
      const okAnswer = (p: dnsPacket.Packet | null) =>
        rcodeName(p) === 'NOERROR' && (p?.answers?.length ?? 0) > 0
          ? 'NOERROR'
          : (rcodeName(p) ?? 'no answer');
      // unbound serves its test zone only (and refuses the rest)
      const name = unbound ? ZONE.a.name : 'after.fuzz.example';
      afterUdp = okAnswer(await udpQuery(port, name, { timeoutMs: 2000 }).catch(() => null));
      afterTcp = okAnswer(await tcpQuery(port, name, { timeoutMs: 2000 }).catch(() => null));
    }
    const exit = await gateway.stop('SIGTERM', 5000);
    const rss = {
      minMiB: Number((sampler.min / 1048576).toFixed(1)),
      maxMiB: Number((sampler.max / 1048576).toFixed(1)),
      samples: sampler.samples.length,
      limitMiB: opts.maxRssMiB,
    };
    const summary: FuzzSummary = {
      seed: opts.seed,
      sent: { udp: udp.sent, tcp: tcp.sent, tcpConnections: tcp.connections },
      replies: { udp: udp.replies, tcp: tcp.replies },
      tcpClosedByGateway: tcp.closedByGateway,
      failures: checker.failures,
      failureReasons: Object.fromEntries(checker.reasons),
      failureSamples: checker.samples,
      sentByKind: Object.fromEntries([...kinds].sort()),
      malformedTotal,
      responsesByRcode,
      upstreamByResult,
      rss,
      durationSeconds: Number(durationSeconds.toFixed(1)),
      alive,
      healthz,
      after: { udp: afterUdp, tcp: afterTcp },
      exit: { code: exit.code, signal: exit.signal },
      ok: false,
    };
    return {
      ...summary,
      ok:
        checker.failures === 0 &&
        alive &&
        healthz === 200 &&
        afterUdp === 'NOERROR' &&
        afterTcp === 'NOERROR' &&
        rss.maxMiB <= opts.maxRssMiB &&
        exit.code === 0 &&
        udp.sent + tcp.sent >= opts.count,
    };
  } finally {
    sampler?.stop();
    for (const s of sockets) s.close();
    await gateway?.stop('SIGKILL');
    await echo?.stop();
    await unbound?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The summary as the lines `npm run fuzz` prints. */
export function formatSummary(s: FuzzSummary, maxSamples = MAX_FAILURE_SAMPLES): string {
  const total = s.sent.udp + s.sent.tcp;
  const rcodes = Object.entries(s.responsesByRcode)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const lines = [
    `packets sent        ${total} (UDP ${s.sent.udp}, TCP ${s.sent.tcp} on ${s.sent.tcpConnections} connections), seed ${s.seed}`,
    `by kind             ${Object.entries(s.sentByKind)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
    `replies             ${s.replies.udp + s.replies.tcp} (UDP ${s.replies.udp}, TCP ${s.replies.tcp}); TCP connections closed by the gateway: ${s.tcpClosedByGateway}`,
    `bad replies         ${s.failures} (unparseable, wrong ID, wrong question, answered twice, QR=0)`,
    ...Object.entries(s.failureReasons).map(([why, n]) => `  ${n} × ${why}`),
    `malformed counted   ${s.malformedTotal ?? 'n/a'} (dns_tool_malformed_total)`,
    `responses by rcode  ${rcodes || 'n/a'}`,
    `upstream requests   ${
      Object.entries(s.upstreamByResult)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'n/a'
    } (dns_tool_upstream_requests_total)`,
    `gateway RSS         min ${s.rss.minMiB} MiB, max ${s.rss.maxMiB} MiB (${s.rss.samples} samples; limit ${s.rss.limitMiB} MiB)`,
    `duration            ${s.durationSeconds} s`,
    `process             ${s.alive ? 'alive' : 'DEAD'}, /healthz ${s.healthz}, exit after SIGTERM ${s.exit.code ?? s.exit.signal}`,
    `valid query after   UDP ${s.after.udp ?? 'n/a'}, TCP ${s.after.tcp ?? 'n/a'}`,
    `result              ${s.ok ? 'PASS' : 'FAIL'}`,
  ];
  for (const f of s.failureSamples.slice(0, maxSamples)) {
    lines.push(
      `  ${f.transport} packet #${f.index}: ${f.reason}\n    query ${f.query || '-'}\n    reply ${f.reply}`,
    );
  }
  return lines.join('\n');
}
