// Config loading end to end: the acceptance file, the shipped example, the frozen result,
// ca_file reading, the check command's output, the schema's own completeness and RR types.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CONFIG_ERROR_CODE,
  ConfigError,
  checkConfigFile,
  loadConfigFile,
  parseConfig,
  validateConfigText,
} from '../../src/config/load.js';
import { rrTypeName, rrTypeNumber } from '../../src/config/rrtypes.js';
import { configSchema } from '../../src/config/schema.js';
import type { GatewayConfig } from '../../src/config/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/config');

function mustParse(text: string, baseDir = '/nonexistent-dir'): GatewayConfig {
  const result = parseConfig(text, 'inline.yaml', baseDir);
  if ('problems' in result) assert.fail(JSON.stringify(result.problems, null, 1));
  return result.config;
}

describe('acceptance', () => {
  test('unknown key, bad CIDR, duplicate CIDR, unknown upstream, short pin: exactly five problems', async () => {
    const result = await loadConfigFile(join(FIXTURES, 'five-problems.yaml'));
    assert.ok('problems' in result);
    assert.deepEqual(
      result.problems.map((p) => [p.line, p.col]),
      [
        [7, 5],
        [13, 16],
        [18, 9],
        [20, 29],
        [21, 15],
      ],
    );
    const [unknownKey, pin, badCidr, duplicate, upstream] = result.problems.map((p) => p.message);
    assert.match(unknownKey, /unknown key "protocol"/);
    assert.match(pin, /decodes to 5 bytes, not 32/);
    assert.match(badCidr, /invalid CIDR "10\.300\.0\.0\/16"/);
    assert.match(duplicate, /10\.1\.0\.0\/16 is already listed in policy "office" \(first at line 17\)/);
    assert.match(upstream, /upstream set "backup" is not defined/);
  });

  test('config.example.yaml is valid and says what the example promises', async () => {
    const result = await loadConfigFile(join(ROOT, 'config.example.yaml'));
    if ('problems' in result) assert.fail(JSON.stringify(result.problems, null, 1));
    const { config } = result;
    assert.deepEqual(config.listeners, [
      {
        name: 'local',
        address: '127.0.0.1',
        port: 5353,
        protocols: ['udp', 'tcp'],
        proxyProtocolFrom: null,
        ecsClientFrom: null,
      },
    ]);
    assert.deepEqual(config.admin, { address: '127.0.0.1', port: 9153 });
    const set = config.upstreams.get('default');
    assert.ok(set);
    assert.equal(set.strategy, 'failover');
    assert.deepEqual(
      set.servers.map((s) => [s.id, s.tlsName, s.verifyCa, s.pins.length]),
      [
        ['1.1.1.1:853', 'cloudflare-dns.com', true, 0],
        ['9.9.9.9:853', 'dns.quad9.net', true, 0],
      ],
    );
    const local = config.policies.find((p) => p.name === 'local');
    assert.ok(local);
    assert.deepEqual(local.clients, ['127.0.0.0/8', '::1/128']);
    assert.deepEqual(local.queryTypes, { allow: null, deny: [255] });
    assert.ok(local.rateLimit);
  });

  test('checkConfigFile prints FILE:LINE:COL lines, none for a valid file', async () => {
    const bad = join(FIXTURES, 'five-problems.yaml');
    const lines = await checkConfigFile(bad);
    assert.equal(lines.length, 5);
    assert.ok(lines[0].startsWith(`${bad}:7:5: `), lines[0]);
    assert.deepEqual(await checkConfigFile(join(ROOT, 'config.example.yaml')), []);
  });

  test('an unreadable file is one problem without a position', async () => {
    const lines = await checkConfigFile(join(FIXTURES, 'does-not-exist.yaml'));
    assert.equal(lines.length, 1);
    assert.match(lines[0], /does-not-exist\.yaml:0:0: cannot read config file: .*ENOENT/);
  });

  test('validateConfigText is usable on README snippets', () => {
    assert.deepEqual(validateConfigText(MINIMAL), []);
    const problems = validateConfigText(MINIMAL.replace('port: 53', 'port: "53"'));
    assert.equal(problems.length, 1);
    assert.equal(problems[0].line, 5);
  });
});

const MINIMAL = `version: 1
listeners:
  - name: lan
    address: "::"
    port: 53
upstreams:
  default:
    servers:
      - address: "2606:4700:4700:0::1111"
        tls_name: Cloudflare-DNS.com
policies:
  - name: office
    clients: [10.1.2.3/16, "2001:DB8:1::/48", 192.0.2.7, "::ffff:192.0.2.8", "::1"]
    rate_limit: { qps: 2.5 }
    query_types: { deny: [ANY, https, TYPE999] }
    domains: { allow: [Good.Example.], deny: [ads.example] }
    log_queries: true
  - name: quiet
    clients: [0.0.0.0/0]
    action: deny
    deny_with: nxdomain
    domains: {}
`;

describe('freezing', () => {
  test('defaults come from the schema', () => {
    const config = mustParse(MINIMAL);
    assert.deepEqual(config.cache, {
      maxEntries: 100000,
      maxBytes: 67108864,
      minTtl: 0,
      maxTtl: 86400,
      negativeTtl: 300,
    });
    assert.deepEqual(config.limits, {
      timeoutMs: 3000,
      udpMaxPayload: 1232,
      maxTcpConnections: 1024,
      tcpIdleTimeoutMs: 10000,
      maxTcpInflightPerConnection: 128,
      maxRateLimitBuckets: 100000,
      maxInflight: 10000,
    });
    assert.deepEqual(config.log, { level: 'info', queries: false });
    assert.equal(config.admin, null);
    const set = config.upstreams.get('default');
    assert.ok(set);
    assert.deepEqual(
      [set.name, set.strategy, set.timeoutMs, set.connections, set.idleTimeoutMs],
      ['default', 'failover', 1500, 2, 30000],
    );
    assert.deepEqual(set.servers[0], {
      address: '2606:4700:4700::1111',
      port: 853,
      tlsName: 'Cloudflare-DNS.com',
      pins: [],
      ca: null,
      caFile: null,
      verifyCa: true,
      id: '[2606:4700:4700::1111]:853',
    });
    assert.deepEqual(config.listeners[0].protocols, ['udp', 'tcp']);
  });

  test('policies are normalised', () => {
    const [office, quiet] = mustParse(MINIMAL).policies;
    assert.deepEqual(office, {
      name: 'office',
      clients: ['10.1.0.0/16', '2001:db8:1::/48', '192.0.2.7/32', '192.0.2.8/32', '::1/128'],
      action: 'allow',
      denyWith: 'refused',
      upstream: 'default',
      rateLimit: { qps: 2.5, burst: 3, scope: 'client', exceed: 'drop', ipv4Prefix: 32, ipv6Prefix: 64 },
      queryTypes: { allow: null, deny: [255, 65, 999] },
      domains: { allow: ['good.example'], deny: ['ads.example'] },
      cache: true,
      logQueries: true,
      mode: 'enforce',
    });
    assert.equal(quiet.action, 'deny');
    assert.equal(quiet.denyWith, 'nxdomain');
    assert.equal(quiet.domains, null, 'empty domain lists leave the stage out');
    assert.equal(quiet.queryTypes, null);
    assert.equal(quiet.rateLimit, null);
    assert.equal(quiet.logQueries, null);
  });

  test('the result is deeply frozen, including the upstream map', () => {
    const config = mustParse(MINIMAL);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.policies[0].clients));
    assert.ok(Object.isFrozen(config.policies[0].rateLimit));
    const set = config.upstreams.get('default');
    assert.ok(set && Object.isFrozen(set.servers[0]) && Object.isFrozen(set.servers[0].pins));
    const writable = config.upstreams as Map<string, unknown>;
    assert.throws(() => writable.set('x', 1), TypeError);
    assert.throws(() => writable.delete('default'), TypeError);
    assert.throws(() => writable.clear(), TypeError);
    assert.equal(config.upstreams.size, 1);
  });

  test('hash is the sha256 of the text and source is the given name', () => {
    const config = mustParse(MINIMAL);
    assert.equal(config.hash, createHash('sha256').update(MINIMAL).digest('hex'));
    assert.equal(config.source, 'inline.yaml');
  });

  test('explicit values override defaults', () => {
    const text = MINIMAL.replace(
      'policies:',
      'cache: { max_entries: 10, max_bytes: 2097152 }\nlimits: { max_inflight: 7 }\nlog: { level: debug, queries: true }\nadmin: {}\npolicies:',
    );
    const config = mustParse(text);
    assert.equal(config.cache.maxEntries, 10);
    assert.equal(config.cache.maxBytes, 2097152);
    assert.equal(config.cache.maxTtl, 86400);
    assert.equal(config.limits.maxInflight, 7);
    assert.deepEqual(config.log, { level: 'debug', queries: true });
    assert.deepEqual(config.admin, { address: '127.0.0.1', port: 9153 });
  });
});

describe('ca_file', () => {
  let dir = '';
  let pem = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dns-tool-config-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'ca.key'),
        '-out',
        join(dir, 'ca.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=test root',
      ],
      { stdio: 'ignore' },
    );
    pem = await readFile(join(dir, 'ca.pem'), 'utf8');
    await writeFile(join(dir, 'not-a-cert.pem'), 'hello\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const withCa = (file: string): string =>
    MINIMAL.replace(
      '        tls_name: Cloudflare-DNS.com',
      `        tls_name: Cloudflare-DNS.com\n        ca_file: ${file}`,
    );

  test('a relative ca_file is read from the config file directory', async () => {
    const path = join(dir, 'config.yaml');
    await writeFile(path, withCa('ca.pem'));
    const result = await loadConfigFile(path);
    if ('problems' in result) assert.fail(JSON.stringify(result.problems));
    const server = result.config.upstreams.get('default')?.servers[0];
    assert.equal(server?.caFile, join(dir, 'ca.pem'));
    assert.equal(server?.ca, pem);
  });

  test('a file without a PEM certificate is a problem at the value', () => {
    const result = parseConfig(withCa('not-a-cert.pem'), 'x.yaml', dir);
    assert.ok('problems' in result);
    assert.equal(result.problems.length, 1);
    assert.deepEqual([result.problems[0].line, result.problems[0].col], [11, 18]);
    assert.match(result.problems[0].message, /holds no PEM certificate/);
  });
});

describe('ConfigError', () => {
  test('formats one FILE:LINE:COL line per problem and has a stable code', () => {
    const error = new ConfigError('c.yaml', [
      { line: 3, col: 5, message: 'first' },
      { line: 9, col: 1, message: 'second' },
    ]);
    assert.equal(error.format(), 'c.yaml:3:5: first\nc.yaml:9:1: second');
    assert.equal(error.message, error.format());
    assert.equal(error.code, CONFIG_ERROR_CODE);
    assert.equal(error.source, 'c.yaml');
    assert.equal(error.problems.length, 2);
    assert.ok(error instanceof Error);
  });
});

describe('schema', () => {
  test('every key has a description and no object admits unknown keys', () => {
    const missing: string[] = [];
    const open: string[] = [];
    const walk = (node: unknown, where: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const schema = node as Record<string, unknown>;
      if (schema.type === 'object' && schema.properties && schema.additionalProperties !== false)
        open.push(where);
      for (const [key, child] of Object.entries((schema.properties as object | undefined) ?? {})) {
        if (typeof (child as { description?: unknown }).description !== 'string')
          missing.push(`${where}.${key}`);
        walk(child, `${where}.${key}`);
      }
      for (const [key, child] of Object.entries((schema.definitions as object | undefined) ?? {})) {
        walk(child, `#${key}`);
      }
      if (schema.items) walk(schema.items, `${where}[]`);
    };
    walk(configSchema, '');
    assert.deepEqual(missing, []);
    assert.deepEqual(open, []);
  });

  test('workers: default 1, integers 1..64 only, reported at the value', () => {
    assert.equal(mustParse(MINIMAL).workers, 1);
    assert.equal(mustParse(`workers: 4\n${MINIMAL}`).workers, 4);
    assert.equal(mustParse(`workers: 64\n${MINIMAL}`).workers, 64);
    for (const bad of ['0', '65', '1.5', '"2"']) {
      const problems = validateConfigText(`workers: ${bad}\n${MINIMAL}`);
      assert.equal(problems.length, 1, `workers: ${bad}`);
      assert.deepEqual([problems[0].line, problems[0].col], [1, 10], `workers: ${bad}`);
    }
  });
});

describe('RR types', () => {
  test('names map to numbers and back', () => {
    assert.equal(rrTypeNumber('A'), 1);
    assert.equal(rrTypeNumber('aaaa'), 28);
    assert.equal(rrTypeNumber('ANY'), 255);
    assert.equal(rrTypeNumber('HTTPS'), 65);
    assert.equal(rrTypeNumber('svcb'), 64);
    assert.equal(rrTypeNumber('TYPE65280'), 65280);
    assert.equal(rrTypeNumber('type0'), 0);
    assert.equal(rrTypeNumber('TYPE65536'), null);
    assert.equal(rrTypeNumber('AXFER'), null);
    assert.equal(rrTypeNumber('*'), null);
    assert.equal(rrTypeNumber('UNKNOWN_5'), null);
    assert.equal(rrTypeName(1), 'A');
    assert.equal(rrTypeName(65), 'HTTPS');
    assert.equal(rrTypeName(255), 'ANY');
    assert.equal(rrTypeName(65280), 'TYPE65280');
  });
});
