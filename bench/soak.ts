// `npm run soak [-- --minutes N --qps N --warmup-seconds N --reload-seconds N]`: the built gateway
// under half its measured maximum UDP rate for N minutes (default 10), with unbound as the DoT
// upstream, a config rewrite (a real change, so a new generation) every 30 s and the upstream
// CA file touched every minute. Reports RSS after warm-up and at the end, lost queries, latency,
// reloads and the event-loop delay p99 the gateway exports on /metrics.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BUCKET_MS, UdpLoad, type WindowStats } from '../test/helpers/load.js';
import { metricValue, scrapeMetrics } from '../test/helpers/metrics-text.js';
import { freePort } from '../test/helpers/ports.js';
import { type GatewayProcess, startGateway } from '../test/helpers/proc.js';
import { mib, type RssSample, RssSampler } from '../test/helpers/rss.js';
import { startUnbound, type UnboundUpstream, unboundServerEntry, ZONE } from '../test/helpers/unbound.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    qps: { type: 'string' },
    // RSS reaches its plateau about 3 minutes in (cache full, heap sized), measured on 10-minute runs
    'warmup-seconds': { type: 'string', default: '180' },
    'reload-seconds': { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
const warmupSeconds = Number(values['warmup-seconds']);
const reloadSeconds = Number(values['reload-seconds']);
const fixedQps = values.qps === undefined ? null : Number(values.qps);
if (
  !(minutes > 0 && minutes <= 24 * 60) ||
  !(warmupSeconds >= 0 && warmupSeconds < minutes * 60) ||
  !(reloadSeconds >= 1) ||
  (fixedQps !== null && !(fixedQps > 0 && fixedQps <= 100_000))
) {
  console.error(
    'usage: npm run soak -- [--minutes N] [--qps N ≤ 100000] [--warmup-seconds N < minutes] [--reload-seconds N]',
  );
  process.exit(2);
}

/** Cache entries: small enough that the unique names fill it during warm-up, so the run measures eviction too. */
const CACHE_ENTRIES = 20_000;
const TIMEOUT_MS = 3000;
const LOST_AFTER_MS = TIMEOUT_MS + 1000;
/** Queries: 90 % over 1,000 hot names (cache hits), 10 % unique (misses, forwarded over DoT). */
const HOT_NAMES = 1000;
const name = (seq: number) =>
  seq % 10 === 0 ? `u${seq}.${ZONE.wild.suffix}` : `h${(seq * 7919) % HOT_NAMES}.${ZONE.wild.suffix}`;
/** The ramp that finds the maximum: each step this long, starting rate, ceiling. */
const STEP_MS = 3000;
const RAMP_START = 2000;
const RAMP_CEILING = 64_000;
const METRICS_EVERY_MS = 10_000;

const say = (line: string) => {
  if (!values.json) console.log(line);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(port: number, adminPort: number, upstream: UnboundUpstream, generation: number): string {
  return `version: 1
listeners: [{ name: soak, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    servers: [${unboundServerEntry(upstream)}]
policies:
  # the deny entry changes at every rewrite: a real change, so each reload builds a new generation
  - { name: lo, clients: [127.0.0.0/8], domains: { deny: [soak-${generation}.invalid] } }
cache: { max_entries: ${CACHE_ENTRIES} }
limits: { timeout_ms: ${TIMEOUT_MS} }
admin: { address: 127.0.0.1, port: ${adminPort} }
log: { level: info }
`;
}

/** A step of the ramp is clean when every query was answered, 99 % of them within 250 ms. */
function clean(w: WindowStats): boolean {
  return w.lost === 0 && w.answered >= w.sent * 0.999 && w.p99Ms < 250;
}

/** The hot names into the cache and the upstream connections open, before anything is measured. */
async function prime(port: number): Promise<void> {
  const load = new UdpLoad({ port, name, lostAfterMs: LOST_AFTER_MS });
  await load.open();
  load.setRate(RAMP_START / 2);
  await sleep(STEP_MS);
  await load.stop();
}

/** Highest rate (queries/s) the gateway answers cleanly: doubling steps, then one bisection. */
async function measureMax(port: number): Promise<{ qps: number; steps: string[] }> {
  const load = new UdpLoad({ port, name, lostAfterMs: LOST_AFTER_MS, socketsPerSource: 8 });
  await load.open();
  const steps: string[] = [];
  const step = async (rate: number): Promise<boolean> => {
    load.mark(`ramp ${rate}`);
    load.setRate(rate);
    await sleep(STEP_MS);
    load.setRate(0);
    load.mark('ramp pause');
    await sleep(LOST_AFTER_MS + 300);
    const w = load.window(`ramp ${rate}`);
    const achieved = Math.round(w.answered / (STEP_MS / 1000));
    steps.push(`${rate}/s: answered ${achieved}/s, lost ${w.lost}, p99 ${w.p99Ms} ms`);
    say(`  ramp ${steps.at(-1)}`);
    return clean(w);
  };
  let good = 0;
  let bad = 0;
  for (let rate = RAMP_START; rate <= RAMP_CEILING; rate *= 2) {
    if (await step(rate)) good = rate;
    else {
      bad = rate;
      break;
    }
  }
  if (bad > 0 && good > 0) {
    const mid = Math.round((good + bad) / 2);
    if (await step(mid)) good = mid;
  }
  await load.stop();
  return { qps: good, steps };
}

/** The host's UDP receive-buffer drops (/proc/net/snmp RcvbufErrors, every socket), or null. */
function udpRcvbufErrors(): number | null {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/);
    const i = names.indexOf('RcvbufErrors');
    return i < 0 ? null : Number(values[i]);
  } catch {
    return null;
  }
}

/** Datagrams the kernel dropped for full receive buffers, summed over UDP sockets bound to `ports`. */
function socketDrops(ports: readonly number[]): number | null {
  try {
    const wanted = new Set(ports);
    let drops = 0;
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 13) continue;
      const port = Number.parseInt(cols[1].split(':')[1], 16);
      if (wanted.has(port)) drops += Number(cols[cols.length - 1]);
    }
    return drops;
  } catch {
    return null;
  }
}

/** Mean RSS of the samples within [from, to) ms of the sampler's start. */
function meanRss(samples: readonly RssSample[], from: number, to: number): number {
  const inside = samples.filter((s) => s.at >= from && s.at < to);
  return inside.length === 0 ? 0 : inside.reduce((n, s) => n + s.bytes, 0) / inside.length;
}

const dir = await mkdtemp(join(tmpdir(), 'dns-tool-soak-'));
let upstream: UnboundUpstream | null = null;
let gateway: GatewayProcess | null = null;
let exitCode = 1;
try {
  upstream = await startUnbound();
  const port = await freePort();
  const adminPort = await freePort();
  const configPath = join(dir, 'config.yaml');
  let generation = 0;
  await writeFile(configPath, config(port, adminPort, upstream, generation));
  gateway = await startGateway({ args: ['--config', configPath] });
  const gw = gateway;

  await prime(port);
  let qps = fixedQps ?? 0;
  let ramp: string[] = [];
  if (fixedQps === null) {
    say('measuring the maximum rate (90 % cache hits, 10 % forwarded)');
    const max = await measureMax(port);
    ramp = max.steps;
    if (max.qps === 0) throw new Error(`not even ${RAMP_START}/s was answered cleanly; pass --qps`);
    qps = Math.round(max.qps / 2);
    say(`maximum clean rate ${max.qps}/s; soaking at ${qps}/s`);
  }
  const fillSeconds = Math.round(CACHE_ENTRIES / (qps / 10));
  say(
    `cache of ${CACHE_ENTRIES} entries filled by the unique names in ~${fillSeconds} s (warm-up ${warmupSeconds} s)`,
  );
  if (fillSeconds > warmupSeconds)
    say('  warning: the cache is still filling after warm-up; RSS growth will include it');

  const sampler = new RssSampler(gw.pid, 1000);
  const rcvbufAtStart = udpRcvbufErrors();
  // the load generator's own delay: a stalled sender/receiver shows up as latency and loss
  const ownLag = monitorEventLoopDelay({ resolution: 10 });
  ownLag.enable();
  const reloadTimes: number[] = [];
  const soakStart = Date.now();
  const load = new UdpLoad({ port, name, lostAfterMs: LOST_AFTER_MS, socketsPerSource: 8 });
  await load.open();
  load.mark('warm-up');
  load.setRate(qps);
  const reloadsAtStart =
    (await scrapeMetrics(adminPort).then((t) =>
      metricValue(t, 'dns_tool_config_reloads_total', { result: 'success' }),
    )) ?? 0;
  const reloadFailuresAtStart =
    (await scrapeMetrics(adminPort).then((t) =>
      metricValue(t, 'dns_tool_config_reloads_total', { result: 'failure' }),
    )) ?? 0;

  // Periodic chores: config rewrites, CA file touches, metric scrapes. All bounded by the run's end.
  const lagP99: number[] = [];
  const scrapeErrors: string[] = [];
  const rewrite = setInterval(() => {
    generation++;
    reloadTimes.push(load.now());
    void writeFile(configPath, config(port, adminPort, upstream!, generation));
  }, reloadSeconds * 1000);
  const touch = setInterval(() => {
    const now = new Date();
    void utimes(upstream!.certPath, now, now).catch(() => {});
  }, 60_000);
  const scrape = setInterval(() => {
    scrapeMetrics(adminPort)
      .then((text) => {
        const v = metricValue(text, 'nodejs_eventloop_lag_p99_seconds');
        if (v !== null) lagP99.push(v * 1000);
      })
      .catch((err: Error) => scrapeErrors.push(err.message));
  }, METRICS_EVERY_MS);
  const progress = setInterval(() => {
    const s = sampler.samples.at(-1);
    say(
      `  ${Math.round((Date.now() - soakStart) / 1000)} s: sent ${load.totalSent}, RSS ${s ? mib(s.bytes) : '?'} MiB, reloads ${generation}`,
    );
  }, 60_000);

  await sleep(warmupSeconds * 1000);
  load.mark('soak');
  const warmAt = Date.now() - soakStart;
  await sleep(minutes * 60_000 - warmupSeconds * 1000);
  const endAt = Date.now() - soakStart;
  clearInterval(rewrite);
  clearInterval(touch);
  clearInterval(scrape);
  clearInterval(progress);
  const dropsAtGateway = socketDrops([port]);
  const dropsAtGenerator = socketDrops(load.localPorts());
  await load.stop();
  sampler.sample();
  sampler.stop();
  ownLag.disable();
  const rcvbufAtEnd = udpRcvbufErrors();
  // where the losses were, by second of send time, and how far the nearest rewrite was
  const lossBySecond = new Map<number, number>();
  for (const b of load.timeline) {
    if (b.lost > 0) {
      const sec = Math.floor(b.at / 1000);
      lossBySecond.set(sec, (lossBySecond.get(sec) ?? 0) + b.lost);
    }
  }
  const lossTimes = [...lossBySecond].map(([sec, n]) => {
    const t = sec * 1000 + BUCKET_MS / 2;
    let nearest: number | null = null;
    for (const r of reloadTimes) if (nearest === null || Math.abs(r - t) < Math.abs(nearest - t)) nearest = r;
    return `${sec} s: ${n}${nearest === null ? '' : ` (nearest rewrite ${((nearest - t) / 1000).toFixed(1)} s away)`}`;
  });

  const text = await scrapeMetrics(adminPort);
  const reloads =
    (metricValue(text, 'dns_tool_config_reloads_total', { result: 'success' }) ?? 0) - reloadsAtStart;
  const reloadFailures =
    (metricValue(text, 'dns_tool_config_reloads_total', { result: 'failure' }) ?? 0) - reloadFailuresAtStart;
  // RSS: mean of the 30 s before the end of warm-up, against the mean of the last 30 s
  const rssWarm = meanRss(sampler.samples, warmAt - 30_000, warmAt);
  const rssEnd = meanRss(sampler.samples, endAt - 30_000, endAt + 1);
  const growth = rssWarm > 0 ? (rssEnd - rssWarm) / rssWarm : Number.NaN;
  const warm = load.window('warm-up');
  const soak = load.window('soak');
  const sortedLag = [...lagP99].sort((a, b) => a - b);
  const alive = gw.child.exitCode === null && gw.child.signalCode === null;
  const exit = await gw.stop('SIGTERM', 10_000);
  const summary = {
    minutes,
    qps,
    ramp,
    warmupSeconds,
    sent: warm.sent + soak.sent,
    answered: warm.answered + soak.answered,
    lost: warm.lost + soak.lost,
    byRcode: soak.byRcode,
    latencyMs: { p50: soak.p50Ms, p99: soak.p99Ms, max: soak.maxMs },
    rssMiB: {
      afterWarmup: Number(mib(rssWarm)),
      end: Number(mib(rssEnd)),
      min: Number(mib(sampler.min)),
      max: Number(mib(sampler.max)),
      growthPercent: Number((growth * 100).toFixed(2)),
    },
    eventLoopP99Ms: {
      median: Number((sortedLag[Math.floor(sortedLag.length / 2)] ?? Number.NaN).toFixed(2)),
      max: Number((sortedLag.at(-1) ?? Number.NaN).toFixed(2)),
      scrapes: sortedLag.length,
    },
    reloads: { rewrites: generation, applied: reloads, failures: reloadFailures },
    scrapeErrors: scrapeErrors.length,
    lossBySecond: lossTimes,
    hostUdpRcvbufDrops: rcvbufAtStart === null || rcvbufAtEnd === null ? null : rcvbufAtEnd - rcvbufAtStart,
    /** Kernel drops on the gateway's listening socket (since it opened: the ramp included) and on the generator's. */
    socketDrops: { gateway: dropsAtGateway, generator: dropsAtGenerator },
    generatorLagMs: {
      p99: Number((ownLag.percentile(99) / 1e6).toFixed(1)),
      max: Number((ownLag.max / 1e6).toFixed(1)),
    },
    alive,
    exitCode: exit.code,
  };
  const ok =
    summary.lost === 0 &&
    growth < 0.05 &&
    reloadFailures === 0 &&
    reloads >= generation - 1 &&
    alive &&
    exit.code === 0;
  if (values.json) console.log(JSON.stringify({ ...summary, ok }, null, 2));
  else {
    console.log(`
soak: ${minutes} min at ${qps} queries/s (UDP; 90 % cache hits, 10 % forwarded over DoT to unbound)
queries        sent ${summary.sent}, answered ${summary.answered}, lost ${summary.lost}
rcodes (soak)  ${Object.entries(summary.byRcode)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}
latency (soak) p50 ${summary.latencyMs.p50} ms, p99 ${summary.latencyMs.p99} ms, max ${summary.latencyMs.max} ms
RSS            after warm-up (${warmupSeconds} s) ${summary.rssMiB.afterWarmup} MiB, end ${summary.rssMiB.end} MiB, growth ${summary.rssMiB.growthPercent} % (min ${summary.rssMiB.min}, max ${summary.rssMiB.max})
event loop     p99 per 10 s scrape (nodejs_eventloop_lag_p99_seconds): median ${summary.eventLoopP99Ms.median} ms, max ${summary.eventLoopP99Ms.max} ms (${summary.eventLoopP99Ms.scrapes} scrapes)
loss by second ${summary.lossBySecond.slice(0, 12).join('; ') || 'none'}${summary.lossBySecond.length > 12 ? ` … (${summary.lossBySecond.length} seconds)` : ''}
host UDP drops ${summary.hostUdpRcvbufDrops ?? 'n/a'} (RcvbufErrors, every socket on the host, during the run); at the gateway's socket ${dropsAtGateway ?? 'n/a'} (ramp included), at the load generator's ${dropsAtGenerator ?? 'n/a'}
load generator event loop delay p99 ${summary.generatorLagMs.p99} ms, max ${summary.generatorLagMs.max} ms
reloads        ${summary.reloads.rewrites} rewrites, ${summary.reloads.applied} applied, ${summary.reloads.failures} failed; CA file touched every 60 s
process        ${alive ? 'alive' : 'DEAD'}, exit after SIGTERM ${exit.code ?? exit.signal}
result         ${ok ? 'PASS' : 'FAIL'} (lost 0, RSS growth < 5 %, every reload applied)`);
  }
  exitCode = ok ? 0 : 1;
} finally {
  await gateway?.stop('SIGKILL');
  await upstream?.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
