// deploy/systemd/dns-tool.service as systemd reads it: `systemd-analyze verify` on the unit file
// itself (a drop-in only points its two commands at the built CLI, as an installation elsewhere
// would), systemd's own rating of the sandbox, and the commands the unit runs, run for real:
// the ExecStartPre check stops a bad config, ExecReload's SIGHUP reloads the gateway.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { freePort } from '../helpers/ports.js';
import { type LogLine, requireBuiltCli, runCli, runProcess, startGateway } from '../helpers/proc.js';

const UNIT = fileURLToPath(new URL('../../deploy/systemd/dns-tool.service', import.meta.url));
const UNIT_NAME = 'dns-tool.service';

/** `Section.Key` → its values in file order (systemd keys may repeat). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a directive: ${line}`);
    const key = `${section}.${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function one(d: Map<string, string[]>, key: string): string {
  const values = d.get(key) ?? [];
  assert.equal(values.length, 1, `${key} is set once`);
  return values[0];
}

/** Splits a command line the unit way for these simple lines (no quoting in them). */
function argv(line: string): string[] {
  assert.ok(!/["'\\]/.test(line), `unquoted command line: ${line}`);
  return line.split(/\s+/).filter(Boolean);
}

/**
 * Lays out `unitText` as dns-tool.service in a fresh directory with a drop-in that points
 * ExecStartPre= and ExecStart= at the built CLI (same arguments), and runs
 * `systemd-analyze verify` on it. Returns the exit code and the lines about this unit.
 */
async function verify(dir: string, unitText: string): Promise<{ code: number | null; problems: string[] }> {
  const unitDir = await mkdtemp(join(dir, 'unit-'));
  const unitPath = join(unitDir, UNIT_NAME);
  await writeFile(unitPath, unitText);
  const d = directives(unitText);
  const cli = `${process.execPath} ${requireBuiltCli()}`;
  const reroute = (line: string) => {
    const [, ...args] = argv(line);
    return `${cli} ${args.join(' ')}`;
  };
  await mkdir(join(unitDir, `${UNIT_NAME}.d`));
  await writeFile(
    join(unitDir, `${UNIT_NAME}.d`, 'cli.conf'),
    [
      '[Service]',
      'ExecStartPre=',
      ...(d.get('Service.ExecStartPre') ?? []).map((l) => `ExecStartPre=${reroute(l)}`),
      'ExecStart=',
      `ExecStart=${reroute(one(d, 'Service.ExecStart'))}`,
      '',
    ].join('\n'),
  );
  const result = await runProcess(requireBinary('systemd-analyze'), ['verify', unitPath], {
    timeoutMs: 60_000,
    env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' },
  });
  // Units this one pulls in (network-online.target, ...) belong to the host; only lines about
  // this unit or its drop-in are its problems.
  const problems = `${result.stdout}\n${result.stderr}`
    .split('\n')
    .filter((l) => l.includes(unitDir) || l.includes(UNIT_NAME));
  return { code: result.code, problems };
}

describe('deploy/systemd/dns-tool.service', { skip: skipUnlessBinaries('systemd-analyze') }, () => {
  let dir: string;
  let unitText: string;
  let unit: Map<string, string[]>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dns-tool-systemd-'));
    unitText = await readFile(UNIT, 'utf8');
    unit = directives(unitText);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('systemd-analyze verify finds no problem in the unit file', async () => {
    const result = await verify(dir, unitText);
    assert.deepEqual(result.problems, []);
    assert.equal(result.code, 0);
  });

  test('the same verification reports a misspelt or invalid directive', async () => {
    const typo = await verify(dir, unitText.replace('ProtectSystem=strict', 'ProtectSytem=strict'));
    assert.ok(
      typo.problems.some((l) => l.includes("Unknown key 'ProtectSytem'")),
      typo.problems.join('\n'),
    );
    const invalid = await verify(dir, unitText.replace('ProtectHome=yes', 'ProtectHome=sometimes'));
    assert.ok(invalid.problems.length > 0, 'an unparsable value is reported');
  });

  test('the sandbox: directives and the exposure systemd rates', async () => {
    const expect: Record<string, string> = {
      'Service.ProtectSystem': 'strict',
      'Service.ProtectHome': 'yes',
      'Service.PrivateTmp': 'yes',
      'Service.NoNewPrivileges': 'yes',
      'Service.DynamicUser': 'yes',
      'Service.CapabilityBoundingSet': 'CAP_NET_BIND_SERVICE',
      'Service.AmbientCapabilities': 'CAP_NET_BIND_SERVICE',
      'Service.Restart': 'on-failure',
      'Service.ExecReload': '/bin/kill -HUP $MAINPID',
    };
    for (const [key, value] of Object.entries(expect)) assert.equal(one(unit, key), value, key);
    assert.ok((unit.get('Service.SystemCallFilter') ?? []).includes('@system-service'));
    const families = argv(one(unit, 'Service.RestrictAddressFamilies'));
    assert.ok(families.includes('AF_INET') && families.includes('AF_INET6'));
    assert.ok(!families.some((f) => f.startsWith('~')), 'an allow-list, not a deny-list');
    // V8 writes the machine code it then runs: W^X would abort Node.js at start-up.
    assert.equal(unit.get('Service.MemoryDenyWriteExecute'), undefined);

    const unitDir = await mkdtemp(join(dir, 'security-'));
    await copyFile(UNIT, join(unitDir, UNIT_NAME));
    const result = await runProcess(
      requireBinary('systemd-analyze'),
      ['security', '--offline=true', '--no-pager', join(unitDir, UNIT_NAME)],
      { timeoutMs: 60_000, env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_COLORS: '0' } },
    );
    const m = /Overall exposure level for dns-tool\.service: (\d+(?:\.\d+)?)/.exec(result.stdout);
    assert.ok(m, `systemd-analyze security printed no exposure level:\n${result.stdout}${result.stderr}`);
    // 10 is an unsandboxed service; below 2 systemd calls it "OK". A dropped protection shows here.
    assert.ok(Number(m[1]) <= 2, `exposure ${m[1]}`);
  });

  test('ExecStartPre checks the very file ExecStart serves, and stops a bad one', async () => {
    const pre = one(unit, 'Service.ExecStartPre');
    assert.ok(!pre.startsWith('-'), 'a failing check must fail the start (no "-" prefix)');
    const [preBinary, ...preArgs] = argv(pre);
    const [startBinary, ...startArgs] = argv(one(unit, 'Service.ExecStart'));
    assert.equal(preBinary, startBinary);
    assert.equal(preArgs[0], 'check');
    assert.equal(preArgs.length, 2);
    assert.deepEqual(startArgs, ['--config', preArgs[1]]);

    // The check as the unit runs it, on a good and on a bad file.
    const good = join(dir, 'good.yaml');
    await writeFile(good, gatewayConfig(5353));
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, `${gatewayConfig(5353)}\nlisteners_typo: []\n`);
    const withFile = (file: string) => preArgs.map((a) => (a === preArgs[1] ? file : a));
    assert.equal((await runCli(withFile(good), { timeoutMs: 30_000 })).code, 0);
    const refused = await runCli(withFile(bad), { timeoutMs: 30_000 });
    assert.equal(refused.code, 1, 'non-zero: systemd does not start the service');
    assert.match(refused.stderr, /bad\.yaml:\d+:\d+: .*listeners_typo/);
  });

  test("ExecStart's arguments run the gateway and ExecReload's command reloads it", async () => {
    const [, ...startArgs] = argv(one(unit, 'Service.ExecStart'));
    const file = join(dir, 'served.yaml');
    await writeFile(file, gatewayConfig(await freePort()));
    const configAt = startArgs.indexOf('--config') + 1;
    const gateway = await startGateway({ args: startArgs.map((a, i) => (i === configAt ? file : a)) });
    try {
      // Start-up compares the file once (a no-op reload); the file stays unchanged after it, so
      // the watch is quiet and the next reload result can only come from the signal.
      const isReload = (l: LogLine) => l.msg === 'config reloaded' || l.msg === 'config unchanged';
      await gateway.waitForLog(isReload, 10_000);
      const seen = new Set(gateway.logs.filter(isReload));
      const reload = argv(one(unit, 'Service.ExecReload')).map((a) =>
        a === '$MAINPID' ? String(gateway.pid) : a,
      );
      const result = await runProcess(reload[0], reload.slice(1), { timeoutMs: 10_000 });
      assert.equal(result.code, 0, result.stderr);
      const line = await gateway.waitForLog((l) => isReload(l) && !seen.has(l), 10_000);
      assert.equal(line.result, 'unchanged');
      assert.equal(gateway.child.exitCode, null, 'SIGHUP reloads; it does not stop the gateway');
    } finally {
      const exit = await gateway.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM (KillSignal) stops it cleanly');
    }
  });
});

/** A config for the built CLI: loopback only; the upstream is never reached in these tests. */
function gatewayConfig(port: number): string {
  return `version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  default: { servers: [{ address: 127.0.0.1, port: 1, tls_name: upstream.test }] }
policies: [{ name: lo, clients: [127.0.0.0/8] }]
log: { level: info }
`;
}
