// Every config check, each pinned to the exact line:col it must report.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ConfigProblem, parseConfig } from '../../src/config/load.js';

/** Lines joined with newlines, so each case shows its own line numbers plainly. */
function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

function problems(text: string): ConfigProblem[] {
  const result = parseConfig(text, 'test.yaml', '/nonexistent-dir');
  return 'problems' in result ? result.problems : [];
}

/** Asserts exactly one problem, at line:col, whose message contains every fragment. */
function expectOne(text: string, line: number, col: number, ...fragments: string[]): void {
  const found = problems(text);
  assert.equal(found.length, 1, `expected one problem, got: ${JSON.stringify(found, null, 1)}`);
  assert.deepEqual([found[0].line, found[0].col], [line, col], found[0].message);
  for (const fragment of fragments) assert.ok(found[0].message.includes(fragment), found[0].message);
}

const HEAD = [
  'version: 1', // 1
  'listeners:', // 2
  '  - name: lan', // 3
  '    address: 127.0.0.1', // 4
  '    port: 5353', // 5
  'upstreams:', // 6
  '  default:', // 7
  '    servers:', // 8
  '      - address: 1.1.1.1', // 9
  '        tls_name: cloudflare-dns.com', // 10
];
const POLICY = [
  'policies:', // 11
  '  - name: office', // 12
  '    clients: [10.0.0.0/8]', // 13
];

describe('the base document', () => {
  test('is valid', () => {
    assert.deepEqual(problems(yaml(...HEAD, ...POLICY)), []);
  });
});

describe('YAML syntax', () => {
  test('a syntax error is reported at its position', () => {
    expectOne(yaml('version: 1', 'listeners: [', 'upstreams: {}'), 3, 1, 'YAML:');
  });
  test('a duplicate key is a problem at the second key', () => {
    expectOne(yaml(...HEAD, ...POLICY, 'version: 1'), 14, 1, 'YAML:', 'unique');
  });
  test('an empty file is a problem at 1:1', () => {
    expectOne('', 1, 1, 'empty');
  });
  test('a top level that is not a mapping is a problem', () => {
    expectOne(yaml('- 1'), 1, 1, 'expected a mapping');
  });
});

describe('schema', () => {
  test('an unknown top-level key points at the key', () => {
    expectOne(yaml(...HEAD, ...POLICY, 'cachee: {}'), 14, 1, 'unknown key "cachee"', 'cache');
  });
  test('an unknown nested key points at the key', () => {
    expectOne(yaml(...HEAD, ...POLICY, '    dmains: {}'), 14, 5, 'policies[0]: unknown key "dmains"');
  });
  test('an unknown key inside a flow mapping points at the key', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    rate_limit: { qps: 5, brust: 9 }'),
      14,
      27,
      'unknown key "brust"',
    );
  });
  test('a value of the wrong type points at the value', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    cache: yes'),
      14,
      12,
      'policies[0].cache',
      'expected a boolean',
      '"yes"',
    );
  });
  test('a value outside an enum lists the allowed values', () => {
    expectOne(yaml(...HEAD, ...POLICY, '    action: permit'), 14, 13, 'must be one of allow, deny');
  });
  test('a missing required key points at the mapping that lacks it', () => {
    const text = yaml(...HEAD, 'policies:', '  - clients: [10.0.0.0/8]');
    expectOne(text, 12, 5, 'policies[0]: missing required key "name"');
  });
  test('a missing required top-level key points at the document', () => {
    expectOne(yaml(...HEAD), 1, 1, 'missing required key "policies"');
  });
  test('a port out of range points at the value', () => {
    const text = yaml(...HEAD.slice(0, 4), '    port: 70000', ...HEAD.slice(5), ...POLICY);
    expectOne(text, 5, 11, 'listeners[0].port: must be <= 65535');
  });
  test('an unsupported version', () => {
    expectOne(yaml('version: 2', ...HEAD.slice(1), ...POLICY), 1, 10, 'version: must be 1');
  });
  test('a protocol listed twice points at the second', () => {
    expectOne(
      yaml(...HEAD.slice(0, 5), '    protocols: [udp, udp]', ...HEAD.slice(5), ...POLICY),
      6,
      22,
      'listed twice',
    );
  });
  test('an invalid upstream set name points at the key', () => {
    const text = yaml(
      ...HEAD,
      '  "bad name":',
      '    servers: [{ address: 9.9.9.9, tls_name: dns.quad9.net }]',
      ...POLICY,
    );
    expectOne(text, 11, 3, 'invalid name "bad name"');
  });
  test('udp_max_payload below 512', () => {
    expectOne(yaml(...HEAD, ...POLICY, 'limits: { udp_max_payload: 100 }'), 14, 28, 'must be >= 512');
  });
  test('cache max_bytes below 1 MiB', () => {
    expectOne(yaml(...HEAD, ...POLICY, 'cache: { max_bytes: 65536 }'), 14, 21, 'must be >= 1048576');
  });
  test('rate_limit burst below 1', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    rate_limit: { qps: 5, burst: 0 }'),
      14,
      34,
      'burst: must be >= 1',
    );
  });
  test('rate_limit qps of 0', () => {
    expectOne(yaml(...HEAD, ...POLICY, '    rate_limit: { qps: 0 }'), 14, 24, 'qps: must be > 0');
  });
});

describe('addresses and CIDRs', () => {
  test('a CIDR with a bad address', () => {
    expectOne(
      yaml(...HEAD, ...POLICY.slice(0, 2), '    clients: [10.0.0.0/8, 10.0.0.256]'),
      13,
      27,
      'invalid CIDR "10.0.0.256"',
    );
  });
  test('a CIDR with a prefix too long', () => {
    expectOne(
      yaml(...HEAD, ...POLICY.slice(0, 2), '    clients: ["2001:db8::/129"]'),
      13,
      15,
      'prefix length must be 0..128',
    );
  });
  test('a host name where a CIDR belongs', () => {
    expectOne(
      yaml(...HEAD, ...POLICY.slice(0, 2), '    clients: [office.example]'),
      13,
      15,
      'host names are not allowed',
    );
  });
  test('a bare IP and the same IP as /32 are one CIDR listed twice', () => {
    const text = yaml(
      ...HEAD,
      ...POLICY.slice(0, 2),
      '    clients:',
      '      - 10.0.0.1',
      '      - 10.0.0.1/32',
    );
    expectOne(text, 15, 9, '10.0.0.1/32 is already listed in this policy (first at line 14)');
  });
  test('a CIDR listed in two policies points at the second', () => {
    const text = yaml(...HEAD, ...POLICY, '  - name: lab', '    clients: ["::ffff:10.0.0.0/104"]');
    expectOne(text, 15, 15, '10.0.0.0/8 is already listed in policy "office" (first at line 13)');
  });
  test('CIDRs differing only in host bits are the same network', () => {
    const text = yaml(...HEAD, ...POLICY, '  - name: lab', '    clients: [10.9.9.9/8]');
    expectOne(text, 15, 15, '10.0.0.0/8 is already listed');
  });
  test('a listener address that is not an IP literal', () => {
    const text = yaml(...HEAD.slice(0, 3), '    address: localhost', ...HEAD.slice(4), ...POLICY);
    expectOne(text, 4, 14, 'listeners[0].address', '"localhost" is not an IPv4 or IPv6 literal');
  });
  test('an upstream address that is not an IP literal', () => {
    const text = yaml(...HEAD.slice(0, 8), '      - address: one.one.one.one', ...HEAD.slice(9), ...POLICY);
    expectOne(text, 9, 18, 'upstreams.default.servers[0].address', 'not an IPv4 or IPv6 literal');
  });
  test('an IPv6 zone index is refused', () => {
    const text = yaml(...HEAD.slice(0, 3), '    address: "fe80::1%eth0"', ...HEAD.slice(4), ...POLICY);
    expectOne(text, 4, 14, 'zone');
  });
  test('an admin address that is not an IP literal', () => {
    expectOne(yaml(...HEAD, ...POLICY, 'admin: { address: localhost }'), 14, 19, 'admin.address');
  });
});

describe('pins and TLS trust', () => {
  test('a pin that is not base64', () => {
    const text = yaml(...HEAD, '        pins: ["not base64!"]', ...POLICY);
    expectOne(text, 11, 16, 'pins[0]', 'not valid base64');
  });
  test('a pin of the wrong length', () => {
    const text = yaml(...HEAD, `        pins: ["${Buffer.alloc(20).toString('base64')}"]`, ...POLICY);
    expectOne(text, 11, 16, 'decodes to 20 bytes, not 32');
  });
  test('a second, bad pin is pointed at precisely', () => {
    const good = Buffer.alloc(32, 7).toString('base64');
    const text = yaml(...HEAD, '        pins:', `          - ${good}`, '          - AAAA', ...POLICY);
    expectOne(text, 13, 13, 'pins[1]', 'decodes to 3 bytes');
  });
  test('verify_ca false without pins', () => {
    expectOne(
      yaml(...HEAD, '        verify_ca: false', ...POLICY),
      11,
      20,
      'verify_ca is false but no pins are set',
    );
  });
  test('verify_ca false with pins is fine', () => {
    const pin = Buffer.alloc(32, 1).toString('base64');
    assert.deepEqual(
      problems(yaml(...HEAD, '        verify_ca: false', `        pins: [${pin}]`, ...POLICY)),
      [],
    );
  });
  test('a missing ca_file points at its value', () => {
    expectOne(
      yaml(...HEAD, '        ca_file: roots.pem', ...POLICY),
      11,
      18,
      'cannot read /nonexistent-dir/roots.pem',
      'ENOENT',
    );
  });
  test('an invalid tls_name', () => {
    const text = yaml(...HEAD.slice(0, 9), '        tls_name: "cloudflare dns.com"', ...POLICY);
    expectOne(text, 10, 19, 'tls_name', 'not a valid domain name');
  });
});

describe('references and duplicates', () => {
  test('an upstream set that does not exist points at the value', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    upstream: backup'),
      14,
      15,
      'upstream set "backup" is not defined',
      '(defined: default)',
    );
  });
  test('the default upstream set missing points at the policy', () => {
    const text = yaml(...HEAD.slice(0, 6), '  main:', ...HEAD.slice(7), ...POLICY);
    expectOne(text, 12, 5, 'upstream set "default" (the default when `upstream` is omitted) is not defined');
  });
  test('duplicate policy names point at the second', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '  - name: office', '    clients: [10.1.0.0/16]'),
      14,
      11,
      'duplicate policy name "office" (first at line 12)',
    );
  });
  test('duplicate listener names point at the second', () => {
    const text = yaml(
      ...HEAD.slice(0, 5),
      '  - name: lan',
      '    address: 127.0.0.2',
      '    port: 5353',
      ...HEAD.slice(5),
      ...POLICY,
    );
    expectOne(text, 6, 11, 'duplicate listener name "lan" (first at line 3)');
  });
  test('two listeners on one address, port and protocol', () => {
    const text = yaml(
      ...HEAD.slice(0, 5),
      '  - name: lan2',
      '    address: 127.0.0.1',
      '    port: 5353',
      '    protocols: [tcp]',
      ...HEAD.slice(5),
      ...POLICY,
    );
    expectOne(text, 8, 11, '127.0.0.1:5353/tcp is already bound by listener "lan" (first at line 3)');
  });
  test('differently spelt IPv6 addresses are the same binding', () => {
    const text = yaml(
      'version: 1',
      'listeners:',
      '  - { name: a, address: "::", port: 53 }',
      '  - { name: b, address: "0::0", port: 53 }',
      ...HEAD.slice(5),
      ...POLICY,
    );
    expectOne(text, 4, 39, ':::53/udp+tcp is already bound by listener "a"');
  });
  test('the same port on different protocols or with port 0 is fine', () => {
    const text = yaml(
      'version: 1',
      'listeners:',
      '  - { name: a, address: 127.0.0.1, port: 53, protocols: [udp] }',
      '  - { name: b, address: 127.0.0.1, port: 53, protocols: [tcp] }',
      '  - { name: c, address: 127.0.0.1, port: 0 }',
      '  - { name: d, address: 127.0.0.1, port: 0 }',
      ...HEAD.slice(5),
      ...POLICY,
    );
    assert.deepEqual(problems(text), []);
  });
});

describe('filters and TTLs', () => {
  test('an unknown query type name', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    query_types: { deny: [ANY, AXFER] }'),
      14,
      32,
      'unknown RR type "AXFER"',
    );
  });
  test('query_types with both allow and deny', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    query_types: { allow: [A], deny: [ANY] }'),
      14,
      18,
      'either allow or deny, not both',
    );
  });
  test('TYPEn and lowercase names are accepted', () => {
    assert.deepEqual(
      problems(yaml(...HEAD, ...POLICY, '    query_types: { deny: [any, TYPE65, https] }')),
      [],
    );
  });
  test('an invalid domain name', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, '    domains: { deny: [ok.example, "bad..example"] }'),
      14,
      35,
      'empty label',
    );
  });
  test('the root as a domain is refused with a hint', () => {
    expectOne(yaml(...HEAD, ...POLICY, '    domains: { deny: ["."] }'), 14, 23, 'allow-list');
  });
  test('a label longer than 63 characters', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, `    domains: { allow: [${'a'.repeat(64)}.example] }`),
      14,
      24,
      'longer than 63',
    );
  });
  test('min_ttl greater than max_ttl points at min_ttl', () => {
    expectOne(
      yaml(...HEAD, ...POLICY, 'cache:', '  max_ttl: 60', '  min_ttl: 120'),
      16,
      12,
      'min_ttl (120) is greater than max_ttl (60)',
    );
  });
});

describe('reporting', () => {
  test('every problem is reported, sorted by line', () => {
    const text = yaml(
      'version: 1',
      'listeners:',
      '  - { name: a, address: 127.0.0.1, port: 53, bogus: 1 }', // 3: unknown key
      'upstreams:',
      '  default:',
      '    servers:',
      '      - { address: 1.1.1.1, tls_name: x.example, verify_ca: false }', // 7: no pins
      'policies:',
      '  - name: p',
      '    clients: [10.0.0.0/33]', // 10: bad CIDR
      'cache: { min_ttl: 9, max_ttl: 1 }', // 11: min > max
    );
    const found = problems(text);
    assert.deepEqual(
      found.map((p) => [p.line, p.col]),
      [
        [3, 46],
        [7, 61],
        [10, 15],
        [11, 19],
      ],
    );
  });
});
