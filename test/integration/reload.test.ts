// Every hot-reload path of the in-process gateway through real sockets and real files: the
// file-watch triggers (in-place edit, rename, ConfigMap symlink swap), refused configs, listener
// moves and failed binds, pin changes, and the state a reload must keep or drop.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, type TestContext, test } from 'node:test';
import type * as dnsPacket from 'dns-packet';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { makeCerts, type TestPki } from '../helpers/certs.js';
import { rcodeName, TcpClient, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { serverEntry } from '../helpers/dot-fixture.js';
import { type DotServer, startDotServer } from '../helpers/dot-server.js';
import { freePort } from '../helpers/ports.js';

/** The contract: an edit is taken within 2 s without a signal. */
const WATCH_DEADLINE_MS = 2000;
/** A fixed clock: rate-limit buckets never refill and cached TTLs never run out during a test. */
const FIXED_NOW = () => 1_000_000;

let pki: TestPki;

before(async () => {
  pki = await makeCerts();
});

after(async () => {
  await pki?.cleanup();
});

interface ConfigOptions {
  port: number;
  dot: DotServer;
  pin?: string;
  action?: 'allow' | 'deny';
  /** Names the `lo` policy filters. */
  deny?: string[];
  /** qps of the `limited` policy (127.0.0.3): burst 3, exceed refused. */
  limitQps?: number;
  upstreamTimeoutMs?: number;
  level?: string;
  /** Replaces the `action: ...` value of the `lo` policy verbatim (for broken files). */
  rawAction?: string;
}

function config(o: ConfigOptions): string {
  const deny = (o.deny ?? ['blocked.invalid']).join(', ');
  return `version: 1
listeners: [{ name: main, address: 127.0.0.1, port: ${o.port} }]
upstreams:
  default:
    timeout_ms: ${o.upstreamTimeoutMs ?? 500}
    connections: 1
    servers:
      - ${serverEntry(pki, o.dot.port, o.pin)}
policies:
  - name: lo
    clients: [127.0.0.1]
    action: ${o.rawAction ?? o.action ?? 'allow'}
    upstream: default
    domains: { deny: [${deny}] }
  - { name: limited, clients: [127.0.0.3], upstream: default, cache: false, rate_limit: { qps: ${o.limitQps ?? 0.001}, burst: 3, exceed: refused } }
limits: { timeout_ms: 800 }
log: { level: ${o.level ?? 'info'} }
`;
}

interface Running {
  gateway: Gateway;
  configPath: string;
  logs: Record<string, unknown>[];
  reloadLines(): Record<string, unknown>[];
}

/** Starts a gateway on an existing config file (which may be a symlink), stopped after the test. */
async function launch(
  t: TestContext,
  configPath: string,
  opts: { watch?: boolean; now?: () => number } = {},
): Promise<Running> {
  const loaded = await loadConfigFile(configPath);
  if ('problems' in loaded) throw new Error(`test config invalid: ${JSON.stringify(loaded.problems)}`);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const gateway = await Gateway.start(loaded.config, {
    logger: createLogger(loaded.config.log.level, sink),
    configPath,
    watch: opts.watch ?? false,
    now: opts.now,
  });
  t.after(() => gateway.stop(200));
  return {
    gateway,
    configPath,
    logs,
    reloadLines: () => logs.filter((l) => 'result' in l),
  };
}

/** A temp dir with a DoT server and a free listener port, all removed after the test. */
async function setup(t: TestContext): Promise<{ dir: string; dot: DotServer; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'dns-tool-reload-'));
  const dot = await startDotServer({ key: pki.server.keyPem, cert: pki.server.certPem });
  const port = await freePort();
  // Registered first, so it runs last: after the gateway stopped.
  t.after(async () => {
    await dot.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, dot, port };
}

/** Polls `pred` every 10 ms until it holds; returns the time it took, or throws after `timeoutMs`. */
async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!pred()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

/** Line (1-based) of the first line of `text` containing `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${needle} not in config`);
  return i + 1;
}

function canBind(protocol: 'udp' | 'tcp', port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind({ port, address: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
    } else {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
    }
  });
}

describe('file changes are taken without a signal', () => {
  test('an in-place edit is reloaded within 2 s', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path, { watch: true });
    assert.equal(rcodeName(await udpQuery(port, 'inplace-1.example')), 'NOERROR');

    await writeFile(path, config({ port, dot, action: 'deny' }));
    const took = await waitUntil(
      () => gw.gateway.counters.reloads.success === 1,
      WATCH_DEADLINE_MS,
      'in-place edit reloaded',
    );
    assert.ok(took <= WATCH_DEADLINE_MS, `took ${took} ms`);
    assert.equal(rcodeName(await udpQuery(port, 'inplace-2.example')), 'REFUSED');
    assert.equal(rcodeName(await tcpQuery(port, 'inplace-3.example')), 'REFUSED');
  });

  test('a write-temp-then-rename is reloaded within 2 s', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path, { watch: true });
    assert.equal(rcodeName(await udpQuery(port, 'rename-1.example')), 'NOERROR');

    const tmp = join(dir, '.config.yaml.tmp');
    await writeFile(tmp, config({ port, dot, action: 'deny' }));
    await rename(tmp, path);
    await waitUntil(() => gw.gateway.counters.reloads.success === 1, WATCH_DEADLINE_MS, 'rename reloaded');
    assert.equal(gw.gateway.counters.reloads.failure, 0, 'a rename never exposes a partial file');
    assert.equal(rcodeName(await udpQuery(port, 'rename-2.example')), 'REFUSED');
  });

  test('the Kubernetes ConfigMap ..data symlink swap is reloaded within 2 s', async (t) => {
    const { dir, dot, port } = await setup(t);
    // The layout the kubelet writes: config.yaml → ..data/config.yaml, ..data → ..<timestamp>.
    await mkdir(join(dir, '..2026_01_01_00_00_00.1'));
    await writeFile(join(dir, '..2026_01_01_00_00_00.1', 'config.yaml'), config({ port, dot }));
    await symlink('..2026_01_01_00_00_00.1', join(dir, '..data'));
    await symlink('..data/config.yaml', join(dir, 'config.yaml'));
    const gw = await launch(t, join(dir, 'config.yaml'), { watch: true });
    assert.equal(rcodeName(await udpQuery(port, 'cm-1.example')), 'NOERROR');

    // The kubelet's update: a new timestamped dir, a new symlink renamed over ..data, the old dir removed.
    await mkdir(join(dir, '..2026_01_01_00_01_00.2'));
    await writeFile(
      join(dir, '..2026_01_01_00_01_00.2', 'config.yaml'),
      config({ port, dot, action: 'deny' }),
    );
    await symlink('..2026_01_01_00_01_00.2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });

    await waitUntil(
      () => gw.gateway.counters.reloads.success === 1,
      WATCH_DEADLINE_MS,
      'symlink swap reloaded',
    );
    assert.equal(rcodeName(await udpQuery(port, 'cm-2.example')), 'REFUSED');
  });
});

describe('a refused config keeps the running one', () => {
  test('invalid YAML: old behaviour stays, failure counted and logged with line:col', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    const runningHash = gw.gateway.config.hash;

    const broken = config({ port, dot, rawAction: '[deny' });
    await writeFile(path, broken);
    const res = await gw.gateway.reload();
    assert.equal(res.result, 'failure');
    assert.equal(gw.gateway.counters.reloads.failure, 1);
    assert.equal(gw.gateway.counters.reloads.success, 0);
    assert.equal(gw.gateway.config.hash, runningHash);
    assert.equal(rcodeName(await udpQuery(port, 'yaml-1.example')), 'NOERROR');
    assert.equal(rcodeName(await tcpQuery(port, 'yaml-2.example')), 'NOERROR');

    const line = gw.reloadLines().at(-1);
    assert.equal(line?.result, 'failure');
    assert.equal(line?.hash, runningHash);
    const problems = line?.problems as string[];
    assert.ok(problems.length >= 1);
    // The flow sequence opened on the action line is never closed: the parser notices on that
    // line or the next one, where the sequence should have ended.
    const reported = problems.map((p) => /^(.*):(\d+):(\d+): /.exec(p));
    assert.ok(
      reported.every((m) => m !== null && m[1] === path && Number(m[3]) >= 1),
      JSON.stringify(problems),
    );
    const opened = lineOf(broken, '[deny');
    const first = Number(reported[0]?.[2]);
    assert.ok(first === opened || first === opened + 1, `line numbers: ${JSON.stringify(problems)}`);
  });

  test('a schema-invalid file: old behaviour stays, failure counted and logged with line:col', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);

    const invalid = config({ port, dot, rawAction: 'maybe' });
    await writeFile(path, invalid);
    const res = await gw.gateway.reload();
    assert.equal(res.result, 'failure');
    assert.equal(gw.gateway.counters.reloads.failure, 1);
    assert.equal(rcodeName(await udpQuery(port, 'schema-1.example')), 'NOERROR');

    const problems = gw.reloadLines().at(-1)?.problems as string[];
    const where = `${path}:${lineOf(invalid, 'action: maybe')}:${'    action: '.length + 1}: `;
    assert.ok(
      problems.some((p) => p.startsWith(where)),
      `expected a problem at ${where}, got ${JSON.stringify(problems)}`,
    );

    // The same file fixed is taken by the next reload.
    await writeFile(path, config({ port, dot, action: 'deny' }));
    assert.equal((await gw.gateway.reload()).result, 'success');
    assert.equal(rcodeName(await udpQuery(port, 'schema-2.example')), 'REFUSED');
  });
});

describe('listeners', () => {
  test('a listener moved to a new port: the new port answers, the old one is closed', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    const moved = await freePort();

    await writeFile(path, config({ port: moved, dot }));
    const res = await gw.gateway.reload();
    assert.equal(res.result, 'success');
    assert.ok(res.result === 'success');
    assert.deepEqual([...res.changes.listeners.added].sort(), [
      `tcp 127.0.0.1 ${moved}`,
      `udp 127.0.0.1 ${moved}`,
    ]);
    assert.deepEqual([...res.changes.listeners.removed].sort(), [
      `tcp 127.0.0.1 ${port}`,
      `udp 127.0.0.1 ${port}`,
    ]);
    assert.equal(rcodeName(await udpQuery(moved, 'move-1.example')), 'NOERROR');
    assert.equal(rcodeName(await tcpQuery(moved, 'move-2.example')), 'NOERROR');
    assert.equal(await udpQuery(port, 'move-3.example', { timeoutMs: 300 }), null);
    await assert.rejects(TcpClient.connect(port), /ECONNREFUSED/);
    assert.ok(await canBind('udp', port), 'old UDP port released');
    assert.ok(await canBind('tcp', port), 'old TCP port released');
  });

  test('a failed bind keeps the old generation whole, then a later reload succeeds', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    assert.equal(rcodeName(await udpQuery(port, 'bind-0.example')), 'NOERROR');
    const connectionsBefore = dot.connections;

    const taken = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen({ port: taken, host: '127.0.0.1', exclusive: true }, r));
    try {
      // The new file moves the listener to a taken port AND changes a policy: neither may apply.
      await writeFile(path, config({ port: taken, dot, action: 'deny' }));
      const res = await gw.gateway.reload();
      assert.equal(res.result, 'failure');
      assert.ok(res.result === 'failure');
      assert.match(
        res.error,
        new RegExp(`cannot listen on tcp 127\\.0\\.0\\.1:${taken}: address already in use`),
      );
      assert.equal(gw.gateway.counters.reloads.failure, 1);
      assert.equal(rcodeName(await udpQuery(port, 'bind-1.example')), 'NOERROR');
      assert.equal(rcodeName(await tcpQuery(port, 'bind-2.example')), 'NOERROR');
      assert.deepEqual(
        gw.gateway.boundListeners().map((l) => l.port),
        [port, port],
      );
      // The UDP socket bound on the new port before TCP failed was released again.
      assert.ok(await canBind('udp', taken), 'UDP on the taken port released');
      assert.equal(dot.connections, connectionsBefore, 'upstream connections untouched');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    // The file did not change; reload() retries it and now it binds.
    const retry = await gw.gateway.reload();
    assert.equal(retry.result, 'success');
    assert.equal(rcodeName(await udpQuery(taken, 'bind-3.example')), 'REFUSED');
    assert.equal(await udpQuery(port, 'bind-4.example', { timeoutMs: 300 }), null);
  });

  test('stop() during a reload leaves no socket or upstream connection open', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    const moved = await freePort();
    await writeFile(path, config({ port: moved, dot, upstreamTimeoutMs: 600 }));

    const reloading = gw.gateway.reload();
    await gw.gateway.stop(200);
    await reloading;
    assert.ok(await canBind('udp', moved), 'UDP on the new port is not left bound');
    assert.ok(await canBind('tcp', moved), 'TCP on the new port is not left bound');
    assert.ok(await canBind('udp', port), 'UDP on the old port is closed');
    await waitUntil(() => dot.openConnections === 0, 2000, 'upstream connections closed');
  });
});

describe('upstream servers', () => {
  test('a changed pin: new connections carry the new pin and queries keep being answered', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot, pin: pki.server.pin }));
    const gw = await launch(t, path);
    assert.equal(rcodeName(await udpQuery(port, 'pin-0.example')), 'NOERROR');
    const connectionsBefore = dot.connections;

    // Slow answers, so queries are in flight on the old server while the pin changes.
    dot.behaviour.delayMs = 100;
    const pending: Promise<dnsPacket.Packet | null>[] = [];
    for (let i = 0; i < 5; i++) pending.push(udpQuery(port, `pin-a${i}.example`, { timeoutMs: 2000 }));
    for (let i = 0; i < 5; i++) pending.push(tcpQuery(port, `pin-b${i}.example`, { timeoutMs: 2000 }));
    await new Promise((r) => setTimeout(r, 20));
    // The CA's pin is as valid as the leaf's when the chain is verified against ca_file.
    await writeFile(path, config({ port, dot, pin: pki.ca.pin }));
    const res = await gw.gateway.reload();
    assert.equal(res.result, 'success');
    assert.ok(res.result === 'success');
    assert.deepEqual(res.changes.upstreams.changed, ['default']);
    for (let i = 0; i < 5; i++) pending.push(udpQuery(port, `pin-c${i}.example`, { timeoutMs: 2000 }));
    const answers = await Promise.all(pending);
    assert.deepEqual(
      answers.map(rcodeName),
      answers.map(() => 'NOERROR'),
    );
    dot.behaviour.delayMs = 0;
    assert.ok(dot.connections > connectionsBefore, 'a new TLS connection was opened for the new pin');
    assert.equal(rcodeName(await tcpQuery(port, 'pin-1.example')), 'NOERROR');

    // A pin the server cannot match: connections fail the check, queries get SERVFAIL.
    const pinFailuresBefore = gw.gateway.counters.pinFailures.get(dot.id) ?? 0;
    await writeFile(path, config({ port, dot, pin: pki.other.pin }));
    assert.equal((await gw.gateway.reload()).result, 'success');
    assert.equal(rcodeName(await udpQuery(port, 'pin-2.example', { timeoutMs: 3000 })), 'SERVFAIL');
    assert.ok((gw.gateway.counters.pinFailures.get(dot.id) ?? 0) > pinFailuresBefore);
  });

  test('a policy-only reload keeps the TLS connections of unchanged servers', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    assert.equal(rcodeName(await udpQuery(port, 'keep-0.example')), 'NOERROR');
    const connectionsBefore = dot.connections;
    const openBefore = dot.openConnections;
    assert.ok(openBefore >= 1);

    await writeFile(path, config({ port, dot, deny: ['blocked.invalid', 'keep-filtered.example'] }));
    const res = await gw.gateway.reload();
    assert.ok(res.result === 'success');
    assert.deepEqual(res.changes.policies.changed, ['lo']);
    assert.deepEqual(res.changes.upstreams, { added: [], removed: [], changed: [] });
    assert.equal(rcodeName(await udpQuery(port, 'keep-filtered.example')), 'REFUSED');
    for (let i = 0; i < 5; i++)
      assert.equal(rcodeName(await udpQuery(port, `keep-${i + 1}.example`)), 'NOERROR');
    assert.equal(dot.connections, connectionsBefore, 'no new TLS connection');
    assert.equal(dot.openConnections, openBefore, 'none closed either');
  });
});

describe('state carried across reloads', () => {
  test('rate-limit buckets survive an unchanged rate_limit and reset when it changes', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path, { now: FIXED_NOW });
    const from = '127.0.0.3';
    for (let i = 0; i < 3; i++)
      assert.equal(rcodeName(await udpQuery(port, `rl-${i}.example`, { from })), 'NOERROR');
    assert.equal(rcodeName(await udpQuery(port, 'rl-3.example', { from })), 'REFUSED', 'burst of 3 spent');

    // Another policy changes; `limited` does not: its bucket stays empty.
    await writeFile(path, config({ port, dot, deny: ['other.invalid'] }));
    assert.equal((await gw.gateway.reload()).result, 'success');
    assert.equal(rcodeName(await udpQuery(port, 'rl-4.example', { from })), 'REFUSED');

    // Its rate_limit changes: a fresh, full bucket.
    await writeFile(path, config({ port, dot, deny: ['other.invalid'], limitQps: 0.002 }));
    assert.equal((await gw.gateway.reload()).result, 'success');
    assert.equal(rcodeName(await udpQuery(port, 'rl-5.example', { from })), 'NOERROR');
  });

  test('cache entries survive while the upstream set is unchanged and are dropped when it changes', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path, { now: FIXED_NOW });
    assert.equal(rcodeName(await udpQuery(port, 'cached.example')), 'NOERROR');
    const upstreamQueries = dot.queries;
    assert.equal(rcodeName(await udpQuery(port, 'cached.example')), 'NOERROR');
    assert.equal(dot.queries, upstreamQueries, 'second query is a cache hit');

    await writeFile(path, config({ port, dot, deny: ['other.invalid'] }));
    assert.equal((await gw.gateway.reload()).result, 'success');
    const hits = gw.gateway.counters.cacheHits;
    assert.equal(rcodeName(await udpQuery(port, 'cached.example')), 'NOERROR');
    assert.equal(dot.queries, upstreamQueries, 'still cached after a policy-only reload');
    assert.equal(gw.gateway.counters.cacheHits, hits + 1);

    // The set's timeout changes: its cache starts empty (the server and its connection are kept).
    const connectionsBefore = dot.connections;
    await writeFile(path, config({ port, dot, deny: ['other.invalid'], upstreamTimeoutMs: 600 }));
    const res = await gw.gateway.reload();
    assert.ok(res.result === 'success');
    assert.deepEqual(res.changes.upstreams.changed, ['default']);
    assert.equal(rcodeName(await udpQuery(port, 'cached.example')), 'NOERROR');
    assert.equal(dot.queries, upstreamQueries + 1, 'asked upstream again');
    assert.equal(dot.connections, connectionsBefore);
  });
});

describe('the reload log line', () => {
  test('one line per reload with result, hash, changes and duration', async (t) => {
    const { dir, dot, port } = await setup(t);
    const path = join(dir, 'config.yaml');
    await writeFile(path, config({ port, dot }));
    const gw = await launch(t, path);
    const firstHash = gw.gateway.config.hash;

    await writeFile(path, config({ port, dot, deny: ['x.invalid'], upstreamTimeoutMs: 700 }));
    await gw.gateway.reload();
    await writeFile(path, config({ port, dot, rawAction: 'maybe' }));
    await gw.gateway.reload();
    await writeFile(path, config({ port, dot, deny: ['x.invalid'], upstreamTimeoutMs: 700 }));
    await gw.gateway.reload();

    const lines = gw.reloadLines();
    assert.deepEqual(
      lines.map((l) => l.result),
      ['success', 'failure', 'unchanged'],
    );
    const [ok, failed, unchanged] = lines;
    const text = await readFile(path, 'utf8');
    const loaded = parseConfig(text, path, dirname(path));
    assert.ok('config' in loaded);
    assert.equal(ok.hash, loaded.config.hash);
    assert.notEqual(ok.hash, firstHash);
    assert.deepEqual(ok.changes, {
      listeners: { added: [], removed: [] },
      upstreams: { added: [], removed: [], changed: ['default'] },
      policies: { added: [], removed: [], changed: ['lo'] },
      // What changed in effect, as `dns-tool diff` prints it.
      summary: [
        'upstream default: timeout_ms 500 -> 700',
        'policy lo: domains.deny added x.invalid; removed blocked.invalid',
      ],
    });
    assert.equal(typeof ok.duration_ms, 'number');
    assert.equal(ok.msg, 'config reloaded');
    assert.equal(failed.hash, ok.hash, 'a failure names the hash still serving');
    assert.equal(typeof failed.duration_ms, 'number');
    assert.ok((failed.problems as string[]).every((p) => /^.+:\d+:\d+: /.test(p)));
    assert.equal(unchanged.hash, ok.hash);
    assert.equal(typeof unchanged.duration_ms, 'number');
  });
});
