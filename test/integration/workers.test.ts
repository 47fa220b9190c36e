// `workers: 2` against the built CLI (`npm run build` first): both processes serve the shared
// UDP and TCP sockets, the primary's /metrics sums them, a SIGHUP reaches every worker, a dead
// worker is replaced, rate limits are divided, SIGTERM leaves no process and a second instance
// on the same port fails to start.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { decode } from 'dns-packet';
import { encodeQuery, rcodeName, TcpClient, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
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
async function launch(t: TestContext, name: string, text: string): Promise<Running & { path: string }> {
  const path = join(dir, `${name}.yaml`);
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
