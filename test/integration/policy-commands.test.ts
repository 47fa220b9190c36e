// The built CLI's offline commands, as users and CI run them: `explain`, `test` and `diff`,
// their output, FILE:LINE:COL problems and exit codes; tests/policy.yaml against
// config.example.yaml; and the reload log carrying the same summary `diff` prints.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { useDotUpstream } from '../helpers/dot-fixture.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { requireBuiltCli, runProcess } from '../helpers/proc.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = join(ROOT, 'config.example.yaml');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dns-tool-policy-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], cwd = ROOT) {
  return runProcess(process.execPath, [requireBuiltCli(), ...args], { cwd, timeoutMs: 20_000 });
}

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** A config with nested client networks, one upstream set per kind of answer. */
function nestedConfig(upstreamPort = 853): string {
  return `version: 1
listeners: [{ name: lan, address: 127.0.0.1, port: 5353 }]
upstreams:
  default:
    servers: [{ address: 127.0.0.1, port: ${upstreamPort}, tls_name: dns.example }]
policies:
  - name: corp
    clients: [10.0.0.0/8, "2001:db8::/32"]
    domains: { deny: [ads.example] }
  - name: office
    clients: [10.1.0.0/16]
    query_types: { deny: [ANY] }
    deny_with: nxdomain
  - name: trial
    clients: [10.2.0.0/16]
    mode: audit
    domains: { deny: [ads.example] }
`;
}

describe('explain', () => {
  test('text: each step in pipeline order and the outcome; exit 0', async () => {
    const r = await cli([
      'explain',
      '--config',
      EXAMPLE,
      '--client',
      '127.0.0.9',
      '--type',
      'ANY',
      'www.example.com',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const labels = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(labels, [
      'client',
      'query',
      'match',
      'action',
      'rate-limit',
      'query-type',
      'domain',
      'decision',
      'answer',
      'rule',
      'mode',
    ]);
    assert.match(r.stdout, /^match\s+policy local by 127\.0\.0\.0\/8$/m);
    assert.match(
      r.stdout,
      /^query-type\s+type ANY filtered by query_types\.deny entry ANY: answered REFUSED/m,
    );
    assert.match(r.stdout, /^decision\s+filtered$/m);
    assert.match(r.stdout, /^answer\s+REFUSED from the gateway$/m);
    assert.match(r.stdout, /^mode\s+enforce$/m);
  });

  test('--json: one object with the documented keys; the runner-up it beat', async () => {
    const config = await file('nested.yaml', nestedConfig());
    const r = await cli(['explain', '--config', config, '--client', '10.1.4.4', '--json', 'X.Ads.Example']);
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout);
    assert.equal(e.client, '10.1.4.4');
    assert.equal(e.policy, 'office');
    assert.equal(e.cidr, '10.1.0.0/16');
    assert.deepEqual(e.runner_up, { policy: 'corp', cidr: '10.0.0.0/8' });
    // office has no domain filter of its own: the longest prefix wins, not the strictest policy.
    assert.equal(e.decision, 'allowed');
    assert.equal(e.rcode, null);
    assert.equal(e.upstream, 'default');
    assert.deepEqual(e.servers, ['127.0.0.1:853 (dns.example)']);
    assert.equal(e.rule, null);
    assert.equal(e.mode, 'enforce');

    const audit = JSON.parse(
      (await cli(['explain', '--config', config, '--client', '10.2.0.1', '--json', 'ads.example'])).stdout,
    );
    assert.deepEqual([audit.decision, audit.would, audit.mode], ['allowed', 'filtered', 'audit']);
    assert.deepEqual(audit.rule, { stage: 'domain', list: null, entry: 'ads.example' });

    const unmatched = JSON.parse(
      (await cli(['explain', '--config', config, '--client', '2001:db9::1', '--json', 'a.example'])).stdout,
    );
    assert.deepEqual(
      [unmatched.decision, unmatched.rcode, unmatched.policy, unmatched.upstream, unmatched.mode],
      ['unmatched', 'REFUSED', null, null, null],
    );
  });

  test('--config defaults to config.yaml in the working directory', async () => {
    const cwd = await mkdtemp(join(dir, 'cwd-'));
    await writeFile(join(cwd, 'config.yaml'), nestedConfig());
    const r = await cli(['explain', '--client', '10.9.9.9', '--json', 'ads.example'], cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).decision, 'filtered');
    const missing = await cli(['explain', '--client', '10.9.9.9', 'ads.example'], dir);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^config\.yaml:0:0: cannot read config file/m);
  });

  test('offline: an allowed query makes no connection to its upstream', async () => {
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const config = await file('offline.yaml', nestedConfig(port));
      const r = await cli(['explain', '--config', config, '--client', '10.9.0.1', 'www.example']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.1:${port} \\(dns\\.example\\)`));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(connections, 0);
  });

  test('invalid input exits 2: a bad config (FILE:LINE:COL), client, type, name or usage', async () => {
    const bad = await file(
      'bad.yaml',
      nestedConfig().replace('clients: [10.1.0.0/16]', 'clients: [10.1.0.0/33]'),
    );
    const r = await cli(['explain', '--config', bad, '--client', '10.1.0.1', 'a.example']);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `${bad}:11:15: policies[1].clients[0]: invalid CIDR "10.1.0.0/33": prefix length must be 0..32`,
    );
    assert.equal(r.stdout, '');
    for (const args of [
      ['--client', '10.1.0.300', 'a.example'],
      ['--client', '10.1.0.1', '--type', 'NOTATYPE', 'a.example'],
      ['--client', '10.1.0.1', 'a..example'],
      ['--client', '10.1.0.1', '--transport', 'quic', 'a.example'],
      ['a.example'],
      ['--client', '10.1.0.1'],
      ['--client', '10.1.0.1', '--bogus', 'a.example'],
    ]) {
      const out = await cli(['explain', '--config', EXAMPLE, ...args]);
      assert.equal(out.code, 2, `${args.join(' ')}: ${out.stdout}`);
      assert.match(out.stderr, /^dns-tool explain: /);
    }
  });
});

describe('test', () => {
  test('tests/policy.yaml passes against config.example.yaml', async () => {
    const r = await cli(['test', '--config', 'config.example.yaml', 'tests/policy.yaml']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^8 passed, 0 failed$/m);
  });

  test('failures print the case, expected and got; one total over all files; exit 1', async () => {
    const config = await file('nested-t.yaml', nestedConfig());
    const good = await file(
      'good.yaml',
      `cases:
  - { name: corp ads, client: 10.9.0.1, qname: ads.example, expect: { decision: filtered, rcode: REFUSED, entry: ads.example } }
  - { name: office any, client: 10.1.0.1, qname: a.example, qtype: ANY, expect: { decision: filtered, rcode: NXDOMAIN } }
`,
    );
    const failing = await file(
      'failing.yaml',
      `cases:
  - name: trial ads are blocked
    client: 10.2.0.1
    qname: ads.example
    expect: { decision: filtered, would: filtered }
  - name: office passes
    client: 10.1.0.1
    qname: a.example
    expect: { decision: allowed }
  - name: wrong policy
    client: "2001:db8::5"
    qname: a.example
    transport: tcp
    expect: { policy: office, upstream: default }
`,
    );
    const r = await cli(['test', '--config', config, good, failing]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stdout,
      [
        `FAIL ${failing}:2:5: trial ads are blocked`,
        '  decision: expected filtered, got allowed',
        `FAIL ${failing}:10:5: wrong policy`,
        '  policy: expected office, got corp',
        '3 passed, 2 failed',
        '',
      ].join('\n'),
    );
  });

  test('invalid test files: every problem as FILE:LINE:COL, nothing run, exit 2', async () => {
    const config = await file('nested-i.yaml', nestedConfig());
    const schema = await file(
      'schema.yaml',
      `cases:
  - name: no client
    qname: a.example
    expect: { decision: allowed }
  - name: unknown key
    client: 10.1.0.1
    qname: a.example
    expect: { verdict: allowed }
  - name: empty expect
    client: 10.1.0.1
    qname: a.example
    transport: quic
    expect: {}
`,
    );
    const semantic = await file(
      'semantic.yaml',
      `cases:
  - name: bad address
    client: 10.1.0.300
    qname: a.example
    expect: { decision: allowed }
  - name: bad type
    client: 10.1.0.1
    qname: a.example
    qtype: NOPE
    expect: { decision: allowed }
`,
    );
    const syntax = await file('syntax.yaml', 'cases:\n  - name: x\n   client: 1\n');
    const fine = await file(
      'fine.yaml',
      'cases:\n  - { name: ok, client: 10.1.0.1, qname: a.example, expect: { decision: allowed } }\n',
    );
    const r = await cli(['test', '--config', config, fine, schema, semantic, syntax]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '', 'no case runs when a file is invalid');
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      `${schema}:2:5: cases[0]: missing required key "client"`,
      `${schema}:8:15: cases[1].expect: unknown key "verdict" (expected one of: decision, would, policy, cidr, rcode, answer, upstream, stage, list, entry, mode)`,
      `${schema}:12:16: cases[2].transport: must be one of udp, tcp, tls, https (got "quic")`,
      `${schema}:13:13: cases[2].expect: must not be empty`,
      `${semantic}:3:13: cases[0].client: client "10.1.0.300" is not an IPv4 or IPv6 address`,
      `${semantic}:9:12: cases[1].qtype: unknown RR type "NOPE" (use a name such as A, AAAA, ANY, or TYPEn)`,
      `${syntax}:3:1: YAML: Sequence item without - indicator`,
    ]);
  });

  test('usage and config problems exit 2', async () => {
    assert.equal((await cli(['test', '--config', EXAMPLE])).code, 2);
    const missing = await cli(['test', '--config', EXAMPLE, join(dir, 'absent.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /absent\.yaml:0:0: cannot read test file/);
    const bad = await file('bad-t.yaml', 'version: 2\n');
    const r = await cli(['test', '--config', bad, 'tests/policy.yaml']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^${bad.replace(/[.]/g, '\\.')}:1:10: version: must be 1`, 'm'));
  });
});

describe('diff', () => {
  test('no change in effect: exit 0 and nothing printed', async () => {
    const a = await file('a.yaml', nestedConfig());
    const b = await file(
      'b.yaml',
      `# reordered, defaults written out\n${nestedConfig().replace('deny_with: nxdomain', 'deny_with: nxdomain\n    cache: true')}`,
    );
    const r = await cli(['diff', a, b]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
  });

  test('changes: one line each, client ranges as minimal CIDR blocks; --json; exit 1', async () => {
    const a = await file('a2.yaml', nestedConfig());
    const b = await file(
      'b2.yaml',
      nestedConfig()
        .replace('clients: [10.1.0.0/16]', 'clients: [10.1.0.0/17]')
        .replace('mode: audit', 'mode: enforce'),
    );
    const r = await cli(['diff', a, b]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'policy office: clients added 10.1.0.0/17; removed 10.1.0.0/16',
      'policy trial: mode audit -> enforce',
      '10.1.128.0/17: office -> corp',
    ]);
    const json = await cli(['diff', '--json', a, b]);
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout).clients, [
      { range: '10.1.128.0/17', from: 'office', to: 'corp' },
    ]);
  });

  test('invalid input: FILE:LINE:COL for each bad file, exit 2', async () => {
    const good = await file('g.yaml', nestedConfig());
    const bad = await file('x.yaml', nestedConfig().replace('mode: audit', 'mode: watch'));
    const r = await cli(['diff', bad, good]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `${bad}:16:11: policies[2].mode: must be one of enforce, audit (got "watch")`,
    );
    assert.equal((await cli(['diff', good])).code, 2);
  });
});

describe('--help', () => {
  test('lists the three commands; each has its own --help', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['explain', 'test', 'diff']) assert.match(r.stdout, new RegExp(`^  dns-tool ${c} `, 'm'));
    for (const c of ['explain', 'test', 'diff']) {
      const own = await cli([c, '--help']);
      assert.equal(own.code, 0);
      assert.match(own.stdout, new RegExp(`^usage: dns-tool ${c} `));
    }
  });
});

describe('reload', () => {
  const upstream = useDotUpstream();

  test('a successful reload logs the summary diff prints', async () => {
    await upstream.ready();
    const port = await freePort();
    const config = (policies: string) => `version: 1
listeners: [{ name: t, address: 127.0.0.1, port: ${port} }]
upstreams:
  default:
    servers:
      - ${upstream.serverEntry()}
policies:
${policies}
log: { level: info }
`;
    const before = config(`  - { name: lo, clients: [127.0.0.0/8], domains: { deny: [ads.example] } }
  - { name: lab, clients: [127.0.5.0/24] }`);
    const afterText =
      config(`  - { name: lo, clients: [127.0.0.0/8], domains: { deny: [ads.example, tracker.example] } }
  - { name: lab, clients: [127.0.5.0/25], mode: audit }`);
    const gw = await startGateway(before);
    try {
      const oldFile = await file('reload-old.yaml', before);
      const newFile = await file('reload-new.yaml', afterText);
      await gw.write(afterText);
      const res = await gw.gateway.reload();
      assert.equal(res.result, 'success');
      const line = gw.logs.find((l) => l.msg === 'config reloaded');
      const summary = (line?.changes as { summary?: string[] } | undefined)?.summary;
      const printed = await cli(['diff', oldFile, newFile]);
      assert.equal(printed.code, 1);
      assert.deepEqual(summary, printed.stdout.trim().split('\n'));
      assert.deepEqual(summary, [
        'policy lo: domains.deny added tracker.example',
        'policy lab: clients added 127.0.5.0/25; removed 127.0.5.0/24',
        'policy lab: mode enforce -> audit',
        '127.0.5.128/25: lab -> lo',
      ]);
    } finally {
      await gw.stop();
    }
  });
});
