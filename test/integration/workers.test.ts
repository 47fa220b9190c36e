// `workers: 2` against the built CLI (`npm run build` first): both processes serve the shared
// UDP and TCP sockets, the primary's /metrics sums them, a SIGHUP reaches every worker, a dead
// worker is replaced, rate limits are divided, SIGTERM leaves no process and a second instance
// on the same port fails to start. Every worker runs the config the primary validated and
// hands out (text and ca_file bytes), never the file as it is on disk, and a dead worker's
// certificate expiry gauge stops counting.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { decode } from 'dns-packet';
import { openssl, TEST_TLS_NAME } from '../helpers/certs.js';
import { encodeQuery, rcodeName, TcpClient, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { serverEntry, useDotUpstream } from '../helpers/dot-fixture.js';
import { startDotServer } from '../helpers/dot-server.js';
import { replaceFile } from '../helpers/files.js';
import { type HttpReply, httpGet } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, type LogLine, runCli, startGateway } from '../helpers/proc.js';

/** Bound on waiting for one log line from the process. */
const LOG_WAIT_MS = 10_000;
/** Bound on waiting for /readyz to turn 200. */
const READY_WAIT_MS = 10_000;

const upstream = useDotUpstream();
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-workers-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function config(port: number, action: 'allow' | 'deny', policyExtra = ''): string {
  return `version: 1
workers: 2
listeners: [{ name: main, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 500
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:
  - { name: lo, clients: [127.0.0.1], action: ${action}, upstream: default, cache: false${policyExtra} }
limits: { timeout_ms: 800 }
log: { level: info, queries: true }
admin: { address: 127.0.0.1, port: 0 }
`;
}

interface Running {
  readonly proc: GatewayProcess;
  readonly admin: number;
}

/** Starts the CLI on a fresh config file and waits until /readyz says every worker is ready. */
async function launch(
  t: TestContext,
  name: string,
  text: string,
  where = dir,
): Promise<Running & { path: string }> {
  const path = join(where, `${name}.yaml`);
  await writeFile(path, text);
  const proc = await startGateway({ args: ['--config', path] });
  t.after(() => proc.stop('SIGTERM', 5000));
  const ready = await proc.waitForLog((l) => l.msg === 'gateway ready', LOG_WAIT_MS);
  assert.equal(ready.workers, 2);
  const admin = (ready.admin as { port: number }).port;
  const deadline = Date.now() + READY_WAIT_MS;
  let last = await httpText(admin, '/readyz');
  while (last.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await httpText(admin, '/readyz');
  }
  assert.equal(last.status, 200, last.body);
  return { proc, admin, path };
}

/** The primary sums every worker's counters per scrape, so it gets more time than one process. */
function httpText(port: number, path: string): Promise<HttpReply> {
  return httpGet(port, path, '127.0.0.1', 5000);
}

/** One sample of the Prometheus text, e.g. metric(text, 'dns_tool_queries_total{policy="lo",decision="allowed"}'). */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `series ${series} missing from /metrics`);
  return Number(line.slice(series.length + 1));
}

/** Live child processes of `pid`, read from /proc (Linux). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(entry));
    } catch {
      // The process ended while being read.
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The workers (slot numbers) that logged a query line for `qname`s matching `prefix`. */
function workersAnswering(proc: GatewayProcess, prefix: string): Set<unknown> {
  return new Set(
    proc.logs.filter((l) => String(l.qname ?? '').startsWith(prefix) && 'worker' in l).map((l) => l.worker),
  );
}

/** Waits until query lines for `count` names under `prefix` were logged (logs are asynchronous). */
async function waitForQueryLines(proc: GatewayProcess, prefix: string, count: number): Promise<void> {
  const names = () =>
    new Set(proc.logs.filter((l) => String(l.qname ?? '').startsWith(prefix)).map((l) => l.qname));
  await proc.waitForLog(() => names().size >= count, LOG_WAIT_MS);
}

test('workers: 2 answers UDP and TCP, /metrics sums both workers, SIGTERM leaves no process', async (t) => {
  const port = await freePort();
  const { proc, admin } = await launch(t, 'serve', config(port, 'allow'));
  const workers = childrenOf(proc.pid);
  assert.equal(workers.length, 2, `worker processes of ${proc.pid}: ${workers.join(', ')}`);

  const UDP = 40;
  const TCP = 10;
  // Each query from a new socket: a new source port (UDP) or connection (TCP) every time.
  for (let i = 0; i < UDP; i++)
    assert.equal(rcodeName(await udpQuery(port, `u${i}.serve.example`)), 'NOERROR');
  for (let i = 0; i < TCP; i++)
    assert.equal(rcodeName(await tcpQuery(port, `t${i}.serve.example`)), 'NOERROR');

  const text = (await httpText(admin, '/metrics')).body;
  assert.equal(metric(text, 'dns_tool_queries_total{policy="lo",decision="allowed"}'), UDP + TCP);
  assert.equal(metric(text, 'dns_tool_responses_total{rcode="NOERROR"}'), UDP + TCP);
  assert.equal(metric(text, 'dns_tool_upstream_duration_seconds_count'), UDP + TCP);
  assert.equal(metric(text, 'dns_tool_workers'), 2);
  assert.equal(metric(text, 'dns_tool_worker_restarts_total'), 0);
  assert.equal(metric(text, 'dns_tool_config_reloads_total{result="success"}'), 0);
  assert.equal(
    metric(text, `dns_tool_upstream_up{upstream="default",server="${upstream.dot.id}"}`),
    1,
    "the workers' server health reaches the primary's /metrics",
  );
  assert.equal(upstream.dot.queries >= UDP + TCP, true);
  // The kernel spread the queries: both workers answered some.
  await waitForQueryLines(proc, 'u', UDP);
  assert.equal(workersAnswering(proc, 'u').size, 2);

  assert.equal((await httpText(admin, '/healthz')).status, 200);
  const exit = await proc.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} still running`);
  assert.ok(proc.logs.some((l) => l.msg === 'stopped' && !('worker' in l)));
});

test('SIGHUP: allow turns into deny in every worker; the reload is logged and counted once', async (t) => {
  const port = await freePort();
  const { proc, admin, path } = await launch(t, 'hup', config(port, 'allow'));
  assert.equal(rcodeName(await udpQuery(port, 'before.hup.example')), 'NOERROR');

  await replaceFile(path, config(port, 'deny'));
  proc.child.kill('SIGHUP');
  const line = await proc.waitForLog(
    (l: LogLine) => l.msg === 'config reloaded' && !('worker' in l),
    LOG_WAIT_MS,
  );
  assert.equal(line.result, 'success');
  assert.deepEqual(line.applied_by, [0, 1]);
  assert.deepEqual((line.changes as { policies: unknown }).policies, {
    added: [],
    removed: [],
    changed: ['lo'],
  });

  const COUNT = 50;
  for (let i = 0; i < COUNT; i++)
    assert.equal(rcodeName(await udpQuery(port, `d${i}.hup.example`)), 'REFUSED');
  for (let i = 0; i < 5; i++) assert.equal(rcodeName(await tcpQuery(port, `dt${i}.hup.example`)), 'REFUSED');
  await waitForQueryLines(proc, 'd', COUNT + 5);
  assert.equal(workersAnswering(proc, 'd').size, 2, 'both workers answered after the reload');

  const text = (await httpText(admin, '/metrics')).body;
  // The watch may see the same change as well; the second look finds it unchanged.
  assert.equal(metric(text, 'dns_tool_config_reloads_total{result="success"}'), 1);
  assert.equal(metric(text, 'dns_tool_config_reloads_total{result="failure"}'), 0);
  assert.equal(metric(text, 'dns_tool_queries_total{policy="lo",decision="denied"}'), COUNT + 5);
  assert.equal(proc.logs.filter((l) => l.msg === 'config reloaded' && !('worker' in l)).length, 1);

  // An invalid file is refused once, by the primary; every worker keeps serving.
  await replaceFile(path, `${config(port, 'allow')}bogus: 1\n`);
  proc.child.kill('SIGHUP');
  const refused = await proc.waitForLog(
    (l) => l.msg === 'config reload refused; previous config still serving',
    LOG_WAIT_MS,
  );
  assert.match(String((refused.problems as string[])[0]), /bogus/);
  assert.equal(rcodeName(await udpQuery(port, 'after.hup.example')), 'REFUSED');
  const failures = metric(
    (await httpText(admin, '/metrics')).body,
    'dns_tool_config_reloads_total{result="failure"}',
  );
  assert.ok(failures >= 1);
});

test('a worker that dies is restarted; totals never go down', async (t) => {
  const port = await freePort();
  const { proc, admin } = await launch(t, 'restart', config(port, 'allow'));
  for (let i = 0; i < 20; i++)
    assert.equal(rcodeName(await udpQuery(port, `r${i}.restart.example`)), 'NOERROR');
  const before = metric(
    (await httpText(admin, '/metrics')).body,
    'dns_tool_queries_total{policy="lo",decision="allowed"}',
  );
  assert.equal(before, 20);

  const [victim] = childrenOf(proc.pid);
  process.kill(victim, 'SIGKILL');
  const died = await proc.waitForLog(
    (l) => l.msg === 'worker died; restarting it' && l.pid === victim,
    LOG_WAIT_MS,
  );
  await proc.waitForLog(
    (l) => l.msg === 'worker started' && l.worker === died.worker && l.pid !== victim,
    LOG_WAIT_MS,
  );
  const after = (await httpText(admin, '/metrics')).body;
  assert.equal(metric(after, 'dns_tool_queries_total{policy="lo",decision="allowed"}'), 20);
  assert.equal(metric(after, 'dns_tool_worker_restarts_total'), 1);
  assert.equal(metric(after, 'dns_tool_workers'), 2);
  const children = childrenOf(proc.pid);
  assert.equal(children.length, 2);
  assert.ok(!children.includes(victim));
  for (let i = 0; i < 20; i++)
    assert.equal(rcodeName(await udpQuery(port, `s${i}.restart.example`)), 'NOERROR');
});

test('rate limits are divided: one TCP connection stays on one worker and gets ceil(burst/2)', async (t) => {
  const port = await freePort();
  const limited = config(
    port,
    'allow',
    ', rate_limit: { qps: 0.01, burst: 4, scope: policy, exceed: refused }',
  );
  const { proc, admin } = await launch(t, 'rate', limited);
  void proc;
  const client = await TcpClient.connect(port);
  try {
    for (let i = 0; i < 10; i++) client.send(encodeQuery(`q${i}.rate.example`));
    const answers = await client.waitFor(10, 5000);
    assert.equal(answers.length, 10);
    const codes = answers.map((a) => (decode(a) as { rcode?: string }).rcode);
    assert.equal(codes.filter((c) => c === 'NOERROR').length, 2, codes.join(' '));
    assert.equal(codes.filter((c) => c === 'REFUSED').length, 8, codes.join(' '));
  } finally {
    client.close();
  }
  const text = (await httpText(admin, '/metrics')).body;
  assert.equal(metric(text, 'dns_tool_queries_total{policy="lo",decision="rate_limited"}'), 8);
});

test('a second instance on the same port fails to start with a clear message', async (t) => {
  const port = await freePort();
  const { path } = await launch(t, 'first', config(port, 'allow'));
  const second = await runCli(['--config', path], { timeoutMs: 20_000 });
  assert.equal(second.code, 3, second.stderr);
  assert.match(
    second.stderr,
    new RegExp(`dns-tool: cannot listen on (udp|tcp) 127\\.0\\.0\\.1:${port}: address already in use`),
  );
  // The first instance is untouched.
  assert.equal(rcodeName(await udpQuery(port, 'still.first.example')), 'NOERROR');
  assert.equal(rcodeName(await tcpQuery(port, 'still.first.example')), 'NOERROR');
});

// ---- the config reaches every worker from the primary, never from the file ----

/** The pid of each slot's current worker, from the primary's "worker started" lines. */
function pidsBySlot(proc: GatewayProcess): Map<number, number> {
  const pids = new Map<number, number>();
  for (const l of proc.logs) if (l.msg === 'worker started') pids.set(Number(l.worker), Number(l.pid));
  return pids;
}

/**
 * Sends one UDP and one TCP query for `name` while every worker but `pid` is stopped
 * (SIGSTOP): the workers share one socket per protocol, so only `pid` can take them. Returns
 * both RCODEs. The others are continued whatever happens.
 */
async function answersFrom(proc: GatewayProcess, pid: number, port: number, name: string): Promise<string[]> {
  const others = childrenOf(proc.pid).filter((p) => p !== pid);
  assert.ok(childrenOf(proc.pid).includes(pid), `worker ${pid} is not running`);
  for (const other of others) process.kill(other, 'SIGSTOP');
  try {
    const udp = await udpQuery(port, name, { timeoutMs: 3000 });
    const tcp = await tcpQuery(port, name, { timeoutMs: 3000 });
    return [rcodeName(udp) ?? 'no answer', rcodeName(tcp) ?? 'no answer'];
  } finally {
    for (const other of others) process.kill(other, 'SIGCONT');
  }
}

/** Kills (SIGKILL) the worker of `slot` and waits for its replacement; returns the new pid. */
async function killAndAwaitReplacement(proc: GatewayProcess, slot: number): Promise<number> {
  const victim = pidsBySlot(proc).get(slot);
  assert.ok(victim !== undefined, `no worker in slot ${slot}`);
  process.kill(victim, 'SIGKILL');
  await proc.waitForLog((l) => l.msg === 'worker died; restarting it' && l.pid === victim, LOG_WAIT_MS);
  const started = await proc.waitForLog(
    (l) => l.msg === 'worker started' && l.worker === slot && l.pid !== victim,
    LOG_WAIT_MS,
  );
  return Number(started.pid);
}

/** A policy that denies g<gen>.block.example: which generation a worker runs shows in its answers. */
function generation(port: number, gen: number): string {
  return config(port, 'allow', `, domains: { deny: [g${gen}.block.example] }`);
}

test('an invalid file on disk: refused once by the primary; a killed worker comes back on the last good config; a valid reload reaches every worker', async (t) => {
  const port = await freePort();
  const { proc, admin, path } = await launch(t, 'generations', generation(port, 1));
  const refusals = () =>
    proc.logs.filter((l) => l.msg === 'config reload refused; previous config still serving');

  // Generation 2 becomes the last good config (so a replacement must not fall back to the
  // startup config either).
  await replaceFile(path, generation(port, 2));
  const second = await proc.waitForLog((l) => l.msg === 'config reloaded' && !('worker' in l), LOG_WAIT_MS);
  assert.deepEqual(second.applied_by, [0, 1]);
  const goodHash = String(second.hash);

  await t.test('the invalid file is refused once, by the primary', async () => {
    await replaceFile(path, `${generation(port, 3)}bogus: 1\n`);
    const refused = await proc.waitForLog(
      (l) => l.msg === 'config reload refused; previous config still serving',
      LOG_WAIT_MS,
    );
    assert.equal('worker' in refused, false);
    assert.match(String((refused.problems as string[])[0]), /bogus/);
  });

  let replacement = 0;
  await t.test('a killed worker is replaced, serving the last good config, not the file', async () => {
    replacement = await killAndAwaitReplacement(proc, 0);
    // The replacement built the primary's generation 2: same hash, same answers.
    const ready = await proc.waitForLog(
      (l) => l.msg === 'worker ready' && l.pid === replacement,
      LOG_WAIT_MS,
    );
    assert.equal(ready.hash, goodHash);
    assert.deepEqual(await answersFrom(proc, replacement, port, 'g2.block.example'), ['REFUSED', 'REFUSED']);
    assert.deepEqual(await answersFrom(proc, replacement, port, 'g1.block.example'), ['NOERROR', 'NOERROR']);
    assert.deepEqual(await answersFrom(proc, replacement, port, 'plain.example'), ['NOERROR', 'NOERROR']);
    // Still one refusal: starting a worker does not read (or report) the file.
    assert.equal(refusals().length, 1);
    assert.equal(proc.logs.filter((l) => l.msg === 'worker could not start').length, 0);
    const text = (await httpText(admin, '/metrics')).body;
    assert.equal(metric(text, 'dns_tool_config_reloads_total{result="failure"}'), 1);
    assert.equal(metric(text, 'dns_tool_config_reloads_total{result="success"}'), 1);
    assert.equal(metric(text, 'dns_tool_workers'), 2);
  });

  await t.test('a valid file is applied by every worker, the replacement included', async () => {
    const pids = pidsBySlot(proc);
    assert.equal(pids.get(0), replacement, 'the replacement from the previous step serves slot 0');
    await replaceFile(path, generation(port, 4));
    const fourth = await proc.waitForLog(
      (l) => l.msg === 'config reloaded' && !('worker' in l) && l.hash !== goodHash,
      LOG_WAIT_MS,
    );
    assert.deepEqual(fourth.applied_by, [0, 1]);
    for (const pid of [pids.get(0), pids.get(1)]) {
      assert.ok(pid !== undefined);
      assert.deepEqual(await answersFrom(proc, pid, port, 'g4.block.example'), ['REFUSED', 'REFUSED']);
      assert.deepEqual(await answersFrom(proc, pid, port, 'g2.block.example'), ['NOERROR', 'NOERROR']);
    }
    assert.equal(refusals().length, 1);
  });
});

test('a reload one worker does not apply is taken back everywhere; that worker is replaced on the previous config', async (t) => {
  // The primary waits 15 s for a worker's reload, then again for it to take the previous
  // config back, then drains it for limits.timeout_ms + 2 s before killing it.
  const SLOW_WAIT_MS = 45_000;
  const port = await freePort();
  const { proc, admin, path } = await launch(t, 'rollback', generation(port, 1));
  const pids = pidsBySlot(proc);
  const stuck = pids.get(1);
  const other = pids.get(0);
  assert.ok(stuck !== undefined && other !== undefined);
  process.kill(stuck, 'SIGSTOP');
  t.after(() => {
    if (alive(stuck)) process.kill(stuck, 'SIGCONT');
  });

  await replaceFile(path, generation(port, 2));
  const refused = await proc.waitForLog(
    (l) => l.msg === 'config reload refused; previous config still serving',
    SLOW_WAIT_MS,
  );
  assert.deepEqual(refused.rolled_back, [0]);
  assert.deepEqual(
    (refused.errors as { worker: number; error: string }[]).map((e) => [e.worker, e.error]),
    [[1, 'worker did not answer the reload']],
  );
  const replaced = await proc.waitForLog(
    (l) => l.msg === 'worker could not apply the current config; replacing it',
    SLOW_WAIT_MS,
  );
  assert.equal(replaced.pid, stuck);
  const fresh = await proc.waitForLog(
    (l) => l.msg === 'worker started' && l.worker === 1 && l.pid !== stuck,
    SLOW_WAIT_MS,
  );
  assert.equal(alive(stuck), false);

  // Both run generation 1 again: the one that had applied generation 2 took it back.
  for (const pid of [other, Number(fresh.pid)]) {
    assert.deepEqual(await answersFrom(proc, pid, port, 'g1.block.example'), ['REFUSED', 'REFUSED']);
    assert.deepEqual(await answersFrom(proc, pid, port, 'g2.block.example'), ['NOERROR', 'NOERROR']);
  }
  const text = (await httpText(admin, '/metrics')).body;
  assert.equal(metric(text, 'dns_tool_config_reloads_total{result="failure"}'), 1);
  assert.equal(metric(text, 'dns_tool_config_reloads_total{result="success"}'), 0);
});

test('a restarted worker runs the ca_file bytes the primary validated, not the file as it is now', async (t) => {
  const port = await freePort();
  const sub = await mkdtemp(join(dir, 'ca-'));
  const caPath = join(sub, 'ca.pem');
  await writeFile(caPath, upstream.pki.ca.certPem);
  // Relative ca_file, no pins: the CA alone decides, resolved against the config's directory.
  const text = config(port, 'allow').replace(
    upstream.serverEntry(),
    `{ address: 127.0.0.1, port: ${upstream.dot.port}, tls_name: ${TEST_TLS_NAME}, ca_file: ca.pem }`,
  );
  const { proc } = await launch(t, 'ca', text, sub);
  const startHash = String(proc.logs.find((l) => l.msg === 'gateway ready')?.hash);
  assert.equal(rcodeName(await udpQuery(port, 'before.ca.example')), 'NOERROR');

  // A CA that did not sign the upstream's certificate, written without a reload: the file
  // watch looks at the config file only.
  await writeFile(caPath, upstream.pki.other.certPem);
  const replacement = await killAndAwaitReplacement(proc, 0);
  const ready = await proc.waitForLog((l) => l.msg === 'worker ready' && l.pid === replacement, LOG_WAIT_MS);
  assert.equal(ready.hash, startHash, 'the replacement built the primary’s generation');
  assert.deepEqual(await answersFrom(proc, replacement, port, 'after.ca.example'), ['NOERROR', 'NOERROR']);

  // SIGHUP reads the new CA: every worker gets the new bytes and fails closed.
  proc.child.kill('SIGHUP');
  const reloaded = await proc.waitForLog((l) => l.msg === 'config reloaded' && !('worker' in l), LOG_WAIT_MS);
  assert.deepEqual(reloaded.applied_by, [0, 1]);
  assert.notEqual(reloaded.hash, startHash);
  for (const pid of pidsBySlot(proc).values())
    assert.deepEqual(await answersFrom(proc, pid, port, 'rotated.ca.example'), ['SERVFAIL', 'SERVFAIL']);
});

test("a dead worker's certificate expiry stops counting; its counts stay in the totals", async (t) => {
  // Two leaves for one key from one CA, as a renewal gives: the first expires in 3 days, the
  // second (the fixture's) in 30. Both serve behind one address through a TCP relay, so the
  // gateway's server (and the gauge's label) stays the same across the renewal.
  const pki = upstream.pki;
  const shortPath = join(dir, 'short-leaf.pem');
  await openssl([
    'x509',
    '-req',
    '-in',
    join(pki.dir, 'server.csr'),
    '-CA',
    pki.ca.certPath,
    '-CAkey',
    pki.ca.keyPath,
    '-set_serial',
    '4242',
    '-days',
    '3',
    '-extfile',
    join(pki.dir, 'server.ext'),
    '-out',
    shortPath,
  ]);
  const shortPem = await readFile(shortPath, 'utf8');
  const notAfter = (pem: string) => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
  const before = await startDotServer({ key: pki.server.keyPem, cert: shortPem });
  t.after(() => before.close());
  const relay = await startRelay(before.port);
  t.after(() => relay.close());

  const port = await freePort();
  const text = config(port, 'allow').replace(
    upstream.serverEntry(),
    serverEntry(pki, relay.port).replace(/, pins: \[[^\]]*\]/, ''),
  );
  const { proc, admin } = await launch(t, 'expiry', text);
  for (let i = 0; i < 10; i++)
    assert.equal(rcodeName(await udpQuery(port, `e${i}.expiry.example`)), 'NOERROR');
  const expiry = (body: string) => {
    const line = body
      .split('\n')
      .find((l) => l.startsWith('dns_tool_upstream_cert_expiry_timestamp_seconds{'));
    assert.ok(line, 'no certificate expiry series');
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  // Every worker verified the short leaf (readiness needs it) and reports it here.
  assert.equal(expiry((await httpText(admin, '/metrics')).body), notAfter(shortPem));

  // The renewal: the relay now leads to the renewed leaf and drops the old connections.
  relay.retarget(upstream.dot.port);
  await killAndAwaitReplacement(proc, 0);
  const renewed = notAfter(pki.server.certPem);
  const deadline = Date.now() + 15_000;
  let body = (await httpText(admin, '/metrics')).body;
  // /readyz makes a worker without an upstream connection open one, so both meet the renewed leaf.
  while (expiry(body) !== renewed && Date.now() < deadline) {
    await httpText(admin, '/readyz');
    await new Promise((r) => setTimeout(r, 200));
    body = (await httpText(admin, '/metrics')).body;
  }
  assert.equal(expiry(body), renewed, 'the dead worker’s 3-day expiry is still reported');
  assert.ok(metric(body, 'dns_tool_queries_total{policy="lo",decision="allowed"}') >= 10);
});

/** A TCP relay on loopback to a port that can be changed; changing it closes every relayed connection. */
async function startRelay(
  targetPort: number,
): Promise<{ port: number; retarget(port: number): void; close(): Promise<void> }> {
  let target = targetPort;
  /** Bounded by the gateway's upstream connections (`connections: 1` per worker, plus probes). */
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const to = connect(target, '127.0.0.1');
    open.add(client);
    open.add(to);
    const drop = () => {
      client.destroy();
      to.destroy();
      open.delete(client);
      open.delete(to);
    };
    client.on('error', drop).on('close', drop);
    to.on('error', drop).on('close', drop);
    client.pipe(to).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    retarget(port: number) {
      target = port;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
