// Lists at feed scale: for each format, generates lists of 1,000, 100,000 and 1,000,000 names
// and measures, each in a fresh process, the load time, the RSS it adds, the event-loop delay
// while it loads, and the cost of a lookup for hits and misses; then, with the 1,000,000-name
// list served over HTTP, refreshes it while a UDP client sends lookups at a fixed rate and
// reports the event-loop delay and the lookups' round trips (and any lost) during the refresh.
//
//   node --import tsx bench/lists.ts                       # every format and size (~2-4 min)
//   node --import tsx bench/lists.ts --formats domains --sizes 1000,1000000
//   node --import tsx bench/lists.ts --rate 4000            # lookups per second during the refresh
//   npm run build && node --import tsx bench/lists.ts --dist   # the compiled module, as deployed
//   node --import tsx bench/lists.ts --build main           # never a worker: slices on the main thread
//
// Everything runs on loopback; each measurement has a deadline.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type * as BuildModule from '../src/lists/build.js';
import type * as ListModule from '../src/lists/list.js';
import { LIST_FORMATS, type ListFormat } from '../src/lists/types.js';

const SELF = fileURLToPath(import.meta.url);
/** A child that has not reported within this long is killed and its row marked failed. */
const CHILD_DEADLINE_MS = 180_000;

interface Args {
  child: 'load' | 'refresh' | null;
  /** Load the module from dist/ (npm run build) instead of the TypeScript sources. */
  dist: boolean;
  /** `worker`: the default (large content on a worker thread); `main`: slices on the main thread. */
  build: 'worker' | 'main';
  formats: ListFormat[];
  sizes: number[];
  rate: number;
  queries: number;
  format: ListFormat;
  file: string;
  url: string;
  size: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    child: null,
    dist: false,
    build: 'worker',
    formats: [...LIST_FORMATS],
    sizes: [1000, 100_000, 1_000_000],
    rate: 2000,
    queries: 100_000,
    format: 'domains',
    file: '',
    url: '',
    size: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--child':
        a.child = v as 'load' | 'refresh';
        i++;
        break;
      case '--dist':
        a.dist = true;
        break;
      case '--build':
        if (v !== 'worker' && v !== 'main') throw new Error('--build is worker or main');
        a.build = v;
        i++;
        break;
      case '--formats':
        a.formats = v.split(',') as ListFormat[];
        i++;
        break;
      case '--sizes':
        a.sizes = v.split(',').map(Number);
        i++;
        break;
      case '--rate':
        a.rate = Number(v);
        i++;
        break;
      case '--queries':
        a.queries = Number(v);
        i++;
        break;
      case '--format':
        a.format = v as ListFormat;
        i++;
        break;
      case '--file':
        a.file = v;
        i++;
        break;
      case '--url':
        a.url = v;
        i++;
        break;
      case '--size':
        a.size = Number(v);
        i++;
        break;
      default:
        throw new Error(`unknown option ${argv[i]}`);
    }
  }
  for (const f of a.formats) if (!LIST_FORMATS.includes(f)) throw new Error(`unknown format ${f}`);
  return a;
}

// ---- the lists -----------------------------------------------------------------------------

/** The i-th listed name: about 30 characters, four labels, like tracker names in real feeds. */
const nameOf = (i: number): string => `ads-${i.toString(36)}.trk${i % 997}.example${i % 13}.com`;
/** A name no list holds, of a similar shape. */
const missOf = (i: number): string => `www.miss-${i.toString(36)}.cdn${i % 991}.example.org`;

function lineOf(format: ListFormat, i: number): string {
  const name = nameOf(i);
  switch (format) {
    case 'domains':
      return name;
    case 'hosts':
      return `0.0.0.0 ${name}`;
    case 'adblock':
      return `||${name}^`;
    case 'rpz':
      // one in a hundred a wildcard trigger, as vendor feeds mix them in
      return i % 100 === 0 ? `*.${name} CNAME .` : `${name} CNAME .`;
  }
}

const RPZ_HEADER = [
  '$TTL 300',
  '$ORIGIN rpz.bench.',
  '@ SOA ns.rpz.bench. hostmaster.rpz.bench. ( 1 3600 600 86400 60 )',
  '@ NS ns.rpz.bench.',
];

/** Writes a list of `size` names, with a comment line every thousand. `variant` changes one
 *  name so the content hashes differently. */
async function writeList(path: string, format: ListFormat, size: number, variant = 0): Promise<void> {
  const out = createWriteStream(path);
  const write = (s: string) =>
    new Promise<void>((resolve, reject) => out.write(s, (err) => (err ? reject(err) : resolve())));
  if (format === 'rpz') await write(`${RPZ_HEADER.join('\n')}\n`);
  const comment = format === 'rpz' ? ';' : format === 'adblock' ? '!' : '#';
  let batch: string[] = [];
  for (let i = 0; i < size; i++) {
    if (i % 1000 === 0) batch.push(`${comment} section ${i / 1000}`);
    batch.push(i === 0 && variant > 0 ? lineOf(format, size + variant) : lineOf(format, i));
    if (batch.length >= 10_000) {
      await write(`${batch.join('\n')}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) await write(`${batch.join('\n')}\n`);
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
}

/** A flat one-byte string, as the wire peek produces (not a rope of concatenations). */
const flat = (s: string): string => Buffer.from(s, 'latin1').toString('latin1');

/** Queries that hit: a name below a listed one where the format covers subdomains. */
function hitQueries(format: ListFormat, size: number, count: number): string[] {
  const out: string[] = [];
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = x % size;
    const name = nameOf(j);
    const wildcard = format === 'rpz' && j % 100 === 0;
    out.push(flat(format === 'domains' || format === 'adblock' || wildcard ? `www.${name}` : name));
  }
  return out;
}

const missQueries = (count: number): string[] => Array.from({ length: count }, (_, i) => flat(missOf(i)));

// ---- child: load and lookups -----------------------------------------------------------------

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median over rounds of the wall and CPU nanoseconds per call of `fn` over `queries`. */
function timeLookups(
  fn: (q: string) => unknown,
  queries: string[],
  rounds = 5,
): { wall: number; cpu: number } {
  let sink = 0;
  for (const q of queries) if (fn(q) !== null) sink++; // warm-up: compiled, caches touched
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (const q of queries) if (fn(q) !== null) sink++;
    const wall = Number(process.hrtime.bigint() - t0);
    const c = process.cpuUsage(c0);
    walls.push(wall / queries.length);
    cpus.push(((c.user + c.system) * 1000) / queries.length);
  }
  if (sink < 0) console.error(sink);
  return { wall: Math.round(median(walls)), cpu: Math.round(median(cpus)) };
}

/** Event-loop delay over `ms` of doing nothing: the machine's own noise (scheduling, other
 *  processes), to read the figures measured during a load or refresh against. */
async function idleDelay(ms: number): Promise<{ p99: number; max: number }> {
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  await new Promise((resolve) => setTimeout(resolve, ms));
  eld.disable();
  return { p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 };
}

/** Garbage-collection pauses while `run` runs: count, longest and total, in ms. */
async function gcPauses<T>(
  run: () => Promise<T>,
): Promise<{ value: T; count: number; maxMs: number; totalMs: number }> {
  let count = 0;
  let maxMs = 0;
  let totalMs = 0;
  const observer = new PerformanceObserver((entries) => {
    for (const e of entries.getEntries()) {
      count++;
      totalMs += e.duration;
      if (e.duration > maxMs) maxMs = e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const value = await run();
  await new Promise((resolve) => setImmediate(resolve)); // entries are delivered asynchronously
  observer.disconnect();
  return { value, count, maxMs, totalMs };
}

/** The build of `bytes` alone on this thread, driven step by step: the 99th percentile and
 *  the longest of the steps' wall time (slices are made of steps; a GC pause lands in one). */
async function stepTimes(
  buildSource: typeof BuildModule.buildSource,
  format: ListFormat,
  bytes: Uint8Array,
): Promise<{ p99Ms: number; maxMs: number }> {
  const steps = buildSource(format, [bytes], 'bench', null);
  const walls: number[] = [];
  for (let n = 0; ; n++) {
    const t0 = performance.now();
    const r = steps.next();
    walls.push(performance.now() - t0);
    if (r.done) break;
    if (n % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
  }
  walls.sort((x, y) => x - y);
  return { p99Ms: walls[Math.floor(walls.length * 0.99)], maxMs: walls[walls.length - 1] };
}

/** The module under test: the TypeScript sources, or the compiled files in dist/. */
async function modules(a: Args): Promise<{ list: typeof ListModule; build: typeof BuildModule }> {
  const root = a.dist ? '../dist/lists/' : '../src/lists/';
  const ext = a.dist ? '.js' : '.ts';
  return {
    list: (await import(new URL(`${root}list${ext}`, import.meta.url).href)) as typeof ListModule,
    build: (await import(new URL(`${root}build${ext}`, import.meta.url).href)) as typeof BuildModule,
  };
}

const loaderOptions = (a: Args) => ({
  workerMinBytes: a.build === 'main' ? Number.POSITIVE_INFINITY : undefined,
});

async function childLoad(a: Args): Promise<void> {
  const { list: listModule, build: buildModule } = await modules(a);
  const { ManagedList } = listModule;
  gc();
  gc();
  const idle = await idleDelay(1000);
  const rss0 = process.memoryUsage().rss;
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const list = new ManagedList(
    { name: 'bench', format: a.format, files: [a.file], urls: [], refreshMs: null, mode: 'enforce' },
    { watch: false, ...loaderOptions(a) },
  );
  const gcs = await gcPauses(() => list.start());
  const loadMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  eld.disable();
  if (!list.ready) throw new Error(`not loaded: ${list.stats().sources[0].lastError}`);
  const peakRss = process.resourceUsage().maxRSS * 1024;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const rss1 = process.memoryUsage().rss;
  const set = list.snapshot.sources[0].main;
  const hits = hitQueries(a.format, a.size, a.queries);
  const misses = missQueries(a.queries);
  for (const q of hits.slice(0, 1000)) if (list.match(q) === null) throw new Error(`expected a hit for ${q}`);
  for (const q of misses.slice(0, 1000))
    if (list.match(q) !== null) throw new Error(`expected a miss for ${q}`);
  const hit = timeLookups((q) => list.match(q), hits);
  const miss = timeLookups((q) => list.match(q), misses);
  const rawHit = timeLookups((q) => (set.lookup(q) >= 0 ? 1 : null), hits);
  const rawMiss = timeLookups((q) => (set.lookup(q) >= 0 ? 1 : null), misses);
  const stepsOf = await stepTimes(buildModule.buildSource, a.format, await readFile(a.file));
  console.log(
    JSON.stringify({
      format: a.format,
      size: a.size,
      entries: list.stats().entries,
      loadMs: Math.round(loadMs),
      cpuMs: Math.round((c.user + c.system) / 1000),
      rssAddedMiB: mib(rss1 - rss0),
      peakAddedMiB: mib(peakRss - rss0),
      setMiB: mib(set.byteLength),
      eldP99Ms: eld.percentile(99) / 1e6,
      eldMaxMs: eld.max / 1e6,
      idleP99Ms: idle.p99,
      idleMaxMs: idle.max,
      gcCount: gcs.count,
      gcMaxMs: gcs.maxMs,
      gcTotalMs: gcs.totalMs,
      stepP99Ms: stepsOf.p99Ms,
      stepMaxMs: stepsOf.maxMs,
      hit,
      miss,
      rawHit,
      rawMiss,
    }),
  );
  await list.close();
  process.exit(0);
}

// ---- child: refresh under lookups --------------------------------------------------------------

async function childRefresh(a: Args): Promise<void> {
  const { ManagedList } = (await modules(a)).list;
  const list = new ManagedList(
    { name: 'bench', format: a.format, files: [], urls: [a.url], refreshMs: null, mode: 'enforce' },
    { fetchTimeoutMs: 60_000, maxBytes: 256 * 1024 * 1024, ...loaderOptions(a) },
  );
  await list.start();
  if (!list.ready) throw new Error(`not loaded: ${list.stats().sources[0].lastError}`);
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    // 4 bytes of sequence number, then the name; the answer is the sequence and one byte.
    const hit = list.match(msg.toString('latin1', 4)) !== null;
    const reply = Buffer.allocUnsafe(5);
    msg.copy(reply, 0, 0, 4);
    reply[4] = hit ? 1 : 0;
    udp.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const eld = monitorEventLoopDelay({ resolution: 1 });
  console.log(JSON.stringify({ ready: true, port: (udp.address() as AddressInfo).port }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'baseline') {
      eld.reset();
      eld.enable();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      eld.disable();
      console.log(
        JSON.stringify({
          eldP50Ms: eld.percentile(50) / 1e6,
          eldP99Ms: eld.percentile(99) / 1e6,
          eldMaxMs: eld.max / 1e6,
        }),
      );
    } else if (line === 'refresh') {
      eld.reset();
      eld.enable();
      const t0 = performance.now();
      const result = await list.refresh();
      const ms = performance.now() - t0;
      eld.disable();
      console.log(
        JSON.stringify({
          refreshed: true,
          result,
          refreshMs: Math.round(ms),
          entries: list.stats().entries,
          eldP50Ms: eld.percentile(50) / 1e6,
          eldP99Ms: eld.percentile(99) / 1e6,
          eldMaxMs: eld.max / 1e6,
        }),
      );
    } else if (line === 'exit') {
      break;
    }
  }
  udp.close();
  await list.close();
  // undici keeps the connection to the parent's server alive; nothing else is left to do.
  process.exit(0);
}

// ---- parent ----------------------------------------------------------------------------------

interface Child {
  send(line: string): void;
  next(): Promise<Record<string, unknown>>;
  done: Promise<void>;
}

/** Runs this script as a child with `--expose-gc`; its stdout lines are JSON messages. */
/** Options every child gets from the parent's command line. */
let passOn: string[] = [];

function child(args: string[]): Child {
  const proc = spawn(process.execPath, [...process.execArgv, '--expose-gc', SELF, ...args, ...passOn], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const killer = setTimeout(() => proc.kill('SIGKILL'), CHILD_DEADLINE_MS);
  const queue: Record<string, unknown>[] = [];
  const waiters: ((m: Record<string, unknown>) => void)[] = [];
  let ended = false;
  createInterface({ input: proc.stdout }).on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(`${line}\n`);
      return;
    }
    const w = waiters.shift();
    if (w) w(msg);
    else queue.push(msg);
  });
  const done = new Promise<void>((resolve) =>
    proc.on('exit', () => {
      clearTimeout(killer);
      ended = true;
      for (const w of waiters.splice(0)) w({ error: 'child exited' });
      resolve();
    }),
  );
  return {
    send: (line) => proc.stdin.write(`${line}\n`),
    next: () =>
      new Promise((resolve) => {
        const m = queue.shift();
        if (m !== undefined) resolve(m);
        else if (ended) resolve({ error: 'child exited' });
        else waiters.push(resolve);
      }),
    done: done.then(() => undefined),
  };
}

interface RefreshRun {
  format: ListFormat;
  result: Record<string, unknown>;
  /** The child's loop delay and the lookups' p99 over one second of lookups without a refresh. */
  baseline: Record<string, unknown>;
  /** Lookups per second achieved during the refresh window. */
  rate: number;
  sent: number;
  answered: number;
  lost: number;
  rttP50: number;
  rttP99: number;
  rttMax: number;
}

async function refreshUnderLoad(
  format: ListFormat,
  size: number,
  file: string,
  variantFile: string,
  rate: number,
): Promise<RefreshRun> {
  let body = await readFile(file);
  let etag = '"v0"';
  const http = createServer((req, res) => {
    if (req.headers['if-none-match'] === etag) res.writeHead(304).end();
    else res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/list`;
  const c = child(['--child', 'refresh', '--format', format, '--url', url, '--size', String(size)]);
  const ready = await c.next();
  if (ready.ready !== true) throw new Error(`refresh child: ${JSON.stringify(ready)}`);

  // The refresh fetches different content, so it rebuilds in full.
  body = await readFile(variantFile);
  etag = '"v1"';

  const udp = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  udp.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    const t = sentAt.get(seq);
    if (t !== undefined) {
      rtts.push(performance.now() - t);
      sentAt.delete(seq);
    }
  });
  const hits = hitQueries(format, size, 1000);
  const misses = missQueries(1000);
  let seq = 0;
  const port = ready.port as number;
  const perTick = Math.max(1, Math.round(rate / 1000));
  const sender = setInterval(() => {
    for (let k = 0; k < perTick; k++) {
      const name = seq % 2 === 0 ? hits[seq % 1000] : misses[seq % 1000];
      const msg = Buffer.allocUnsafe(4 + name.length);
      msg.writeUInt32BE(seq, 0);
      msg.write(name, 4, 'latin1');
      sentAt.set(seq, performance.now());
      udp.send(msg, port, '127.0.0.1');
      seq++;
    }
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  // The same lookups for a second without a refresh: what the machine gives with no build.
  const baselineSent = seq;
  const baselineAnswered = rtts.length;
  c.send('baseline');
  const baseline = await c.next();
  const baselineRtts = rtts.slice(baselineAnswered).sort((x, y) => x - y);
  const sentBefore = seq;
  const answeredBefore = rtts.length;
  const windowStart = performance.now();
  c.send('refresh');
  const result = await c.next();
  await new Promise((resolve) => setTimeout(resolve, 300));
  clearInterval(sender);
  const windowMs = performance.now() - windowStart;
  await new Promise((resolve) => setTimeout(resolve, 1000)); // late answers still count
  const window = rtts.slice(answeredBefore).sort((x, y) => x - y);
  const sent = seq - sentBefore;
  const pctOf = (xs: number[], p: number) =>
    xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0;
  const pct = (p: number) =>
    window.length ? window[Math.min(window.length - 1, Math.floor(p * window.length))] : 0;
  c.send('exit');
  await c.done;
  udp.close();
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
  return {
    format,
    result,
    baseline: { ...baseline, sent: sentBefore - baselineSent, rttP99: pctOf(baselineRtts, 0.99) },
    rate: Math.round((sent * 1000) / windowMs),
    sent,
    answered: window.length,
    lost: sentAt.size,
    rttP50: pct(0.5),
    rttP99: pct(0.99),
    rttMax: window.length ? window[window.length - 1] : 0,
  };
}

const fmt = (n: unknown, digits = 1): string =>
  typeof n === 'number' ? n.toFixed(digits) : String(n ?? '-');

async function main(a: Args): Promise<void> {
  passOn = [...(a.dist ? ['--dist'] : []), '--build', a.build];
  const dir = await mkdtemp(join(tmpdir(), 'dns-tool-bench-lists-'));
  const started = new Date().toISOString();
  const load0 = loadavg()[0];
  try {
    const files = new Map<string, string>();
    for (const format of a.formats)
      for (const size of a.sizes) {
        const path = join(dir, `${format}-${size}.txt`);
        await writeList(path, format, size);
        files.set(`${format}-${size}`, path);
      }
    const rows: Record<string, unknown>[] = [];
    for (const format of a.formats)
      for (const size of a.sizes) {
        process.stderr.write(`load ${format} ${size}\n`);
        const c = child([
          '--child',
          'load',
          '--format',
          format,
          '--file',
          files.get(`${format}-${size}`)!,
          '--size',
          String(size),
          '--queries',
          String(a.queries),
        ]);
        const row = await c.next();
        await c.done;
        rows.push(row);
      }
    const biggest = Math.max(...a.sizes);
    const refreshes: RefreshRun[] = [];
    for (const format of a.formats) {
      process.stderr.write(`refresh ${format} ${biggest}\n`);
      const variant = join(dir, `${format}-${biggest}-variant.txt`);
      await writeList(variant, format, biggest, 1);
      refreshes.push(
        await refreshUnderLoad(format, biggest, files.get(`${format}-${biggest}`)!, variant, a.rate),
      );
    }

    const out: string[] = [];
    out.push(`## Lists benchmark — ${started}`, '');
    out.push(
      `    node ${process.version}; ${process.platform}; module from ${a.dist ? 'dist/ (compiled)' : 'src/ (tsx)'}; builds ${a.build === 'worker' ? 'on a worker thread from 1 MiB (the default)' : 'in slices on the main thread'}; load average at start ${load0.toFixed(1)}, at end ${loadavg()[0].toFixed(1)}; ${a.queries} queries per lookup round, median of 5 rounds`,
      '',
    );
    out.push('### Load and lookups (each row a fresh process)', '');
    out.push(
      '| format | names | entries | load ms | load CPU ms | RSS added MiB | peak added MiB | set MiB | loop delay p99 / max ms: idle → during load | match() hit ns (CPU ns) | match() miss ns (CPU ns) | set.lookup hit / miss ns |',
    );
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      if (r.error !== undefined) {
        out.push(`| ${r.format} | ${r.size} | failed: ${String(r.error)} |`);
        continue;
      }
      const h = r.hit as { wall: number; cpu: number };
      const m = r.miss as { wall: number; cpu: number };
      const rh = r.rawHit as { wall: number };
      const rm = r.rawMiss as { wall: number };
      out.push(
        `| ${r.format} | ${r.size} | ${r.entries} | ${r.loadMs} | ${r.cpuMs} | ${fmt(r.rssAddedMiB)} | ${fmt(r.peakAddedMiB)} | ${fmt(r.setMiB)} | ${fmt(r.idleP99Ms, 2)} / ${fmt(r.idleMaxMs, 2)} → ${fmt(r.eldP99Ms, 2)} / ${fmt(r.eldMaxMs, 2)} | ${h.wall} (${h.cpu}) | ${m.wall} (${m.cpu}) | ${rh.wall} / ${rm.wall} |`,
      );
    }
    out.push('', '### Where the loop delay during a load comes from', '');
    out.push(
      '| format | names | GC pauses during load: count / longest / total ms | build steps alone (main thread): p99 / longest ms |',
    );
    out.push('|---|---:|---:|---:|');
    for (const r of rows) {
      if (r.error !== undefined) continue;
      out.push(
        `| ${r.format} | ${r.size} | ${r.gcCount} / ${fmt(r.gcMaxMs, 2)} / ${fmt(r.gcTotalMs, 1)} | ${fmt(r.stepP99Ms, 2)} / ${fmt(r.stepMaxMs, 2)} |`,
      );
    }
    out.push(
      '',
      `### Refresh of the ${biggest}-name list over HTTP, lookups at ${a.rate}/s over UDP meanwhile`,
      '',
    );
    out.push(
      '| format | result | refresh ms | loop delay p50 / p99 / max ms | same, 1 s without refresh | lookups sent (per s) | answered | lost | RTT p50 / p99 / max ms | RTT p99 without refresh |',
    );
    out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of refreshes) {
      const x = r.result;
      const b = r.baseline;
      out.push(
        `| ${r.format} | ${String(x.result)} | ${String(x.refreshMs)} | ${fmt(x.eldP50Ms, 2)} / ${fmt(x.eldP99Ms, 2)} / ${fmt(x.eldMaxMs, 2)} | ${fmt(b.eldP50Ms, 2)} / ${fmt(b.eldP99Ms, 2)} / ${fmt(b.eldMaxMs, 2)} | ${r.sent} (${r.rate}) | ${r.answered} | ${r.lost} | ${fmt(r.rttP50, 2)} / ${fmt(r.rttP99, 2)} / ${fmt(r.rttMax, 2)} | ${fmt(b.rttP99, 2)} |`,
      );
    }
    console.log(out.join('\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const args = parseArgs(process.argv.slice(2));
if (args.child === 'load') await childLoad(args);
else if (args.child === 'refresh') await childRefresh(args);
else await main(args);
