// Client abuse against the built gateway, with figures: `npm run abuse` (builds first).
//
// The gateway runs as its own process (dist/cli.js) with the in-process DoT test upstream;
// the attacks run in a worker thread (bench/abuse-worker.ts) and the well-behaved clients on
// the main thread, all on loopback. Each phase runs one attack for PHASE_MS while three
// well-behaved clients keep asking (UDP from 127.0.0.2 and a persistent TCP connection from
// 127.0.0.3 at PROBE_QPS each, one new TCP connection per query from 127.0.0.4 at 5 qps);
// the report gives their loss and latency per phase, the attacker's own figures and the
// gateway's resident memory. The attackers' sources (127.0.0.0/8 but the probes' addresses,
// and ::1) have a rate limit of RATE_QPS per client; the probes' policy allows each twice its
// rate. Knobs (environment): PHASE_MS (8000), PROBE_QPS (50),
// IDLE_CONNECTIONS (2000), MAX_TCP (1000), IDLE_TIMEOUT_MS (3000), SLOWLORIS (1000),
// FLOOD_CONCURRENCY (1500), UDP_SOURCES (250).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  newConnectionProbe,
  type Probe,
  type ProbeStats,
  tcpProbe,
  udpProbe,
} from '../test/helpers/abuse.js';
import { makeCerts, TEST_TLS_NAME } from '../test/helpers/certs.js';
import { startDotServer } from '../test/helpers/dot-server.js';
import { freePort } from '../test/helpers/ports.js';
import { startGateway } from '../test/helpers/proc.js';
import type { Attack } from './abuse-worker.js';

const env = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
};
const PHASE_MS = env('PHASE_MS', 8000);
const PROBE_QPS = env('PROBE_QPS', 50);
const IDLE_CONNECTIONS = env('IDLE_CONNECTIONS', 2000);
const MAX_TCP = env('MAX_TCP', 1000);
const IDLE_TIMEOUT_MS = env('IDLE_TIMEOUT_MS', 3000);
const SLOWLORIS = env('SLOWLORIS', 1000);
const FLOOD_CONCURRENCY = env('FLOOD_CONCURRENCY', 1500);
const UDP_SOURCES = Math.min(250, env('UDP_SOURCES', 250));
/** The attackers' policy: per-client rate limit (qps, burst twice that). */
const RATE_QPS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Each held connection costs a descriptor here and one in the gateway.
const fdLimit = Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim());
const fdNeeded = Math.max(IDLE_CONNECTIONS, SLOWLORIS, FLOOD_CONCURRENCY) + 200;
if (Number.isFinite(fdLimit) && fdLimit < fdNeeded) {
  console.error(
    `ulimit -n is ${fdLimit}; this run needs about ${fdNeeded} (lower IDLE_CONNECTIONS or raise it)`,
  );
  process.exit(2);
}

const pki = await makeCerts();
const dot = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
const dir = await mkdtemp(join(tmpdir(), 'dns-tool-abuse-'));
const port = await freePort();
const configPath = join(dir, 'config.yaml');
await writeFile(
  configPath,
  `version: 1
listeners:
  - { name: v4, address: 127.0.0.1, port: ${port} }
  - { name: v6, address: "::1", port: ${port} }
upstreams:
  default:
    connections: 2
    servers:
      - { address: 127.0.0.1, port: ${dot.port}, tls_name: ${TEST_TLS_NAME}, ca_file: ${pki.ca.certPath}, pins: ["${pki.server.pin}"] }
policies:
  - name: lo
    clients: [127.0.0.0/8, "::1"]
    upstream: default
    rate_limit: { qps: ${RATE_QPS}, burst: ${2 * RATE_QPS}, scope: client, exceed: drop }
  - name: probes                  # the well-behaved clients: limited too, at twice their rate
    clients: [127.0.0.2/31, 127.0.0.4]
    upstream: default
    rate_limit: { qps: ${2 * PROBE_QPS}, burst: ${2 * PROBE_QPS}, scope: client, exceed: drop }
limits: { timeout_ms: 2000, max_tcp_connections: ${MAX_TCP}, tcp_idle_timeout_ms: ${IDLE_TIMEOUT_MS} }
log: { level: info }
`,
);
const gw = await startGateway({ args: ['--config', configPath], readyTimeoutMs: 15_000 });
// A worker does not inherit the TypeScript loader: it registers tsx itself, then loads the attacker.
const worker = new Worker(
  `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(
    new URL('./abuse-worker.ts', import.meta.url).href,
  )}); });`,
  { eval: true },
);

function attack(a: Attack): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { ok: boolean; figures?: Record<string, number>; error?: string }) =>
      m.ok ? resolve(m.figures ?? {}) : reject(new Error(m.error)),
    );
    worker.postMessage(a);
  });
}

/** The gateway's resident memory now (VmRSS) or at its peak so far (VmHWM), in MiB. */
async function memoryMiB(field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${gw.pid}/status`, 'utf8');
  const kib = Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))?.[1] ?? 0);
  return Math.round(kib / 102.4) / 10;
}

interface Phase {
  name: string;
  what: string;
  run: () => Promise<Record<string, number>>;
}

const phases: Phase[] = [
  {
    name: 'baseline',
    what: 'no attack',
    run: async () => {
      await sleep(PHASE_MS);
      return {};
    },
  },
  {
    name: 'idle TCP',
    what: `${IDLE_CONNECTIONS} connections that send nothing and never close (cap ${MAX_TCP}, idle ${IDLE_TIMEOUT_MS} ms)`,
    run: () => attack({ kind: 'idle', port, count: IDLE_CONNECTIONS, holdMs: PHASE_MS }),
  },
  {
    name: 'slowloris',
    what: `${SLOWLORIS} connections trickling a 512-byte frame, 1 byte per 200 ms`,
    run: () => attack({ kind: 'slowloris', port, count: SLOWLORIS, everyMs: 200, holdMs: PHASE_MS }),
  },
  {
    name: 'connect flood',
    what: `connects, ${FLOOD_CONCURRENCY} at a time, each held 300 ms (cap ${MAX_TCP})`,
    run: () =>
      attack({
        kind: 'connect-flood',
        port,
        concurrency: FLOOD_CONCURRENCY,
        holdMs: 300,
        durationMs: PHASE_MS,
      }),
  },
  {
    name: 'UDP flood',
    what: `${UDP_SOURCES} IPv4 sources + ::1, as fast as one thread sends, rate limit ${RATE_QPS} qps per client`,
    run: () => attack({ kind: 'udp-flood', port, sources: UDP_SOURCES, durationMs: PHASE_MS }),
  },
];

const probes: [string, Probe][] = [
  ['UDP', await udpProbe(port, { qps: PROBE_QPS, from: '127.0.0.2' })],
  ['TCP', await tcpProbe(port, { qps: PROBE_QPS, from: '127.0.0.3' })],
  ['new TCP', await newConnectionProbe(port, { qps: 5, from: '127.0.0.4' })],
];

interface Row {
  phase: Phase;
  stats: ProbeStats[];
  attacker: Record<string, number>;
  rss: number;
}
const rows: Row[] = [];
let peak = 0;
try {
  await sleep(1000); // warm up: TLS to the upstream, JIT
  for (const [, p] of probes) void p.nextWindow();
  for (const phase of phases) {
    const started = Date.now();
    const attacker = await phase.run();
    const left = PHASE_MS - (Date.now() - started);
    if (left > 0) await sleep(left);
    const rss = await memoryMiB('VmRSS');
    const stats = await Promise.all(probes.map(([, p]) => p.nextWindow()));
    rows.push({ phase, stats, attacker, rss });
    console.error(
      `${phase.name}: ${probes.map(([n], i) => `${n} lost ${stats[i].lost}/${stats[i].sent} p99 ${stats[i].p99.toFixed(1)} ms`).join('; ')}; ${JSON.stringify(attacker)}`,
    );
    // A quiet second between phases, outside any window.
    await sleep(1000);
    for (const [, p] of probes) void p.nextWindow();
  }
  peak = await memoryMiB('VmHWM');
} finally {
  for (const [, p] of probes) await p.stop();
  await worker.terminate();
  const exit = await gw.stop('SIGTERM', 5000);
  if (exit.code !== 0) console.error(`gateway exited ${exit.code ?? exit.signal}`);
  await dot.close();
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
}

const fmt = (s: ProbeStats) =>
  `${s.lost}/${s.sent} (${((100 * s.lost) / Math.max(1, s.sent)).toFixed(1)} %) | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)}`;
const lines = [
  `## dns-tool client abuse — ${new Date().toISOString()}`,
  '',
  `    node ${process.version}; ${PHASE_MS} ms per phase; well-behaved clients: UDP and TCP at ${PROBE_QPS} qps each, a new TCP connection per query at 5 qps; loss = unanswered within 2 s; gateway peak RSS ${peak} MiB`,
  '',
  '| phase | attack | UDP lost | UDP p50 ms | UDP p99 ms | TCP lost | TCP p50 ms | TCP p99 ms | new-TCP lost | new-TCP p50 ms | new-TCP p99 ms | gateway RSS MiB | attacker |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ...rows.map(
    (r) =>
      `| ${r.phase.name} | ${r.phase.what} | ${r.stats.map(fmt).join(' | ')} | ${r.rss} | ${Object.entries(
        r.attacker,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')} |`,
  ),
  '',
];
const report = lines.join('\n');
console.log(report);
const resultsDir = new URL('./results/', import.meta.url);
await mkdir(resultsDir, { recursive: true });
await writeFile(new URL(`abuse-${Date.now()}.md`, resultsDir), report);
