// SIGHUP against the built CLI (`npm run build` first): the signal reloads the config file, the
// behaviour changes, and "config reloaded" is logged on stdout.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { rcodeName, TcpClient, tcpQuery, udpQuery } from '../helpers/dns-client.js';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { replaceFile } from '../helpers/files.js';
import { freePort } from '../helpers/ports.js';
import { type GatewayProcess, type LogLine, startGateway as startCli } from '../helpers/proc.js';

/** Bound on waiting for one log line from the process. */
const LOG_WAIT_MS = 5000;

const upstream = useDotUpstream();
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-reload-cli-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function config(port: number, action: 'allow' | 'deny'): string {
  return `version: 1
listeners: [{ name: main, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    timeout_ms: 500
    connections: 1
    servers:
      - ${upstream.serverEntry()}
policies:
  - { name: lo, clients: [127.0.0.1], action: ${action}, upstream: default }
limits: { timeout_ms: 800 }
log: { level: info }
`;
}

/** Starts the CLI on `path`; it is stopped after the test, and must exit 0. */
async function launch(t: TestContext, path: string): Promise<GatewayProcess> {
  const proc = await startCli({ args: ['--config', path] });
  t.after(async () => {
    const exit = await proc.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  });
  return proc;
}

const reloadedLines = (proc: GatewayProcess) => proc.logs.filter((l) => l.msg === 'config reloaded');

test('SIGHUP reloads the config: allow turns into deny, "config reloaded" is logged', async (t) => {
  const port = await freePort();
  const path = join(dir, 'hup.yaml');
  await writeFile(path, config(port, 'allow'));
  const proc = await launch(t, path);
  assert.equal(rcodeName(await udpQuery(port, 'hup-1.example')), 'NOERROR');

  const denying = config(port, 'deny');
  await replaceFile(path, denying);
  proc.child.kill('SIGHUP');
  const line = await proc.waitForLog((l) => l.msg === 'config reloaded', LOG_WAIT_MS);
  assert.equal(line.result, 'success');
  assert.equal(line.hash, await configHash(path));
  assert.deepEqual((line.changes as { policies: unknown }).policies, {
    added: [],
    removed: [],
    changed: ['lo'],
  });
  assert.equal(typeof line.duration_ms, 'number');
  assert.equal(rcodeName(await udpQuery(port, 'hup-2.example')), 'REFUSED');
  assert.equal(rcodeName(await tcpQuery(port, 'hup-3.example')), 'REFUSED');
});

test('SIGHUP alone retries a file the watch could not apply (its port was taken)', async (t) => {
  const port = await freePort();
  const path = join(dir, 'retry.yaml');
  await writeFile(path, config(port, 'allow'));
  const proc = await launch(t, path);
  assert.equal(rcodeName(await udpQuery(port, 'retry-1.example')), 'NOERROR');

  const taken = await freePort();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen({ port: taken, host: '127.0.0.1', exclusive: true }, r));
  try {
    // The watch sees the new file and tries it; the bind fails and the old config keeps serving.
    await replaceFile(path, config(taken, 'deny'));
    const failed = await proc.waitForLog(
      (l: LogLine) => l.result === 'failure' && String(l.error).includes('address already in use'),
      LOG_WAIT_MS,
    );
    assert.match(String(failed.error), new RegExp(`tcp 127\\.0\\.0\\.1:${taken}`));
    assert.equal(rcodeName(await udpQuery(port, 'retry-2.example')), 'NOERROR');
    assert.equal(reloadedLines(proc).length, 0);
  } finally {
    await new Promise((r) => blocker.close(r));
  }

  // The file is unchanged since, so the watch stays quiet: only the signal can apply it now.
  proc.child.kill('SIGHUP');
  const line = await proc.waitForLog((l) => l.msg === 'config reloaded', LOG_WAIT_MS);
  assert.deepEqual((line.changes as { listeners: unknown }).listeners, {
    added: [`udp 127.0.0.1 ${taken}`, `tcp 127.0.0.1 ${taken}`],
    removed: [`udp 127.0.0.1 ${port}`, `tcp 127.0.0.1 ${port}`],
  });
  assert.equal(rcodeName(await udpQuery(taken, 'retry-3.example')), 'REFUSED');
  assert.equal(rcodeName(await tcpQuery(taken, 'retry-4.example')), 'REFUSED');
  await assert.rejects(TcpClient.connect(port), /ECONNREFUSED/);
  assert.equal(reloadedLines(proc).length, 1);
});

/** The identity the gateway reports: the text's hash extended by the ca_file contents. */
async function configHash(path: string): Promise<string> {
  const loaded = await loadConfigFile(path);
  if ('problems' in loaded) throw new Error('test config invalid');
  return loaded.config.hash;
}
