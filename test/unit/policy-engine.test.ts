// The offline decision engine (src/policy/engine.ts): the match and the prefix it beat,
// each step's verdict in pipeline order, the outcome and audit mode, on configs parsed
// from YAML as the commands load them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { PolicyEngine, QueryInputError } from '../../src/policy/engine.js';
import { POLICY_STEPS } from '../../src/policy/order.js';

function configOf(policies: string): GatewayConfig {
  const text = `
version: 1
listeners: [{ name: t, address: 127.0.0.1, port: 5353 }]
upstreams:
  default:
    servers: [{ address: 192.0.2.53, tls_name: dns.example }, { address: "2001:db8::53", port: 8853, tls_name: dns6.example }]
  corp:
    servers: [{ address: 10.0.0.53, tls_name: corp.example }]
policies:
${policies}
`;
  const result = parseConfig(text, 'test.yaml', process.cwd());
  if ('problems' in result) throw new Error(JSON.stringify(result.problems));
  return result.config;
}

const NESTED = configOf(`
  - name: corp
    clients: [10.0.0.0/8, "2001:db8::/32"]
    upstream: corp
    domains: { deny: [ads.example] }
  - name: office
    clients: [10.1.0.0/16, "2001:db8:1::/48"]
    query_types: { deny: [ANY, AXFR] }
    domains: { allow: [ok.ads.example], deny: [ads.example, tracker.example] }
    deny_with: nxdomain
  - name: lab
    clients: [10.1.2.0/24, 10.1.2.3]
    query_types: { allow: [A, AAAA] }
    domains: { allow: [lab.example] }
    deny_with: drop
  - name: guests
    clients: [192.0.2.0/24]
    action: deny
  - name: trial
    clients: [198.51.100.0/24]
    mode: audit
    rate_limit: { qps: 5, exceed: truncate }
    query_types: { deny: [TXT] }
    domains: { deny: [ads.example] }
  - name: trial-deny
    clients: [203.0.113.0/24]
    mode: audit
    action: deny
    domains: { deny: [ads.example] }
`);
const engine = new PolicyEngine(NESTED);

describe('match', () => {
  test('the longest prefix wins and names the one it beat', () => {
    const e = engine.explain({ client: '10.1.2.9', qname: 'www.example' });
    assert.equal(e.policy, 'lab');
    assert.equal(e.cidr, '10.1.2.0/24');
    assert.deepEqual(e.runner_up, { policy: 'office', cidr: '10.1.0.0/16' });
    // A host route beats its own policy's /24: the runner-up is the next prefix, whoever holds it.
    const host = engine.explain({ client: '10.1.2.3', qname: 'www.example' });
    assert.equal(host.cidr, '10.1.2.3/32');
    assert.deepEqual(host.runner_up, { policy: 'lab', cidr: '10.1.2.0/24' });
    const outer = engine.explain({ client: '10.200.0.1', qname: 'www.example' });
    assert.deepEqual([outer.policy, outer.cidr, outer.runner_up], ['corp', '10.0.0.0/8', null]);
  });

  test('IPv6 nests the same way; IPv4-mapped IPv6 counts as IPv4', () => {
    const e = engine.explain({ client: '2001:DB8:1::7', qname: 'www.example' });
    assert.deepEqual([e.client, e.policy, e.cidr], ['2001:db8:1::7', 'office', '2001:db8:1::/48']);
    assert.deepEqual(e.runner_up, { policy: 'corp', cidr: '2001:db8::/32' });
    const mapped = engine.explain({ client: '::ffff:10.1.2.9', qname: 'www.example' });
    assert.deepEqual([mapped.client, mapped.policy], ['10.1.2.9', 'lab']);
  });

  test('an unmatched client is answered REFUSED by the gateway', () => {
    const e = engine.explain({ client: '172.16.0.1', qname: 'www.example' });
    assert.equal(e.decision, 'unmatched');
    assert.equal(e.rcode, 'REFUSED');
    assert.equal(e.answer, 'rcode');
    assert.deepEqual([e.policy, e.cidr, e.upstream, e.mode], [null, null, null, null]);
    assert.deepEqual(e.rule, { stage: 'match', list: null, entry: null });
    assert.equal(e.steps.length, 1);
  });
});

describe('steps and outcome', () => {
  test('every policy step is reported, in the one pipeline order', () => {
    const e = engine.explain({ client: '10.1.9.9', qname: 'www.example' });
    assert.deepEqual(
      e.steps.map((s) => s.stage),
      ['match', ...POLICY_STEPS],
    );
  });

  test('an allowed query names its upstream set and servers', () => {
    const e = engine.explain({ client: '10.200.0.1', qname: 'www.example', qtype: 'AAAA' });
    assert.equal(e.decision, 'allowed');
    assert.equal(e.rcode, null);
    assert.equal(e.answer, 'upstream');
    assert.equal(e.upstream, 'corp');
    assert.deepEqual(e.servers, ['10.0.0.53:853 (corp.example)']);
    assert.equal(e.rule, null);
    assert.equal(e.mode, 'enforce');
    assert.equal(e.cache, true);
  });

  test('domain deny entry: filtered per deny_with, with the entry that matched', () => {
    const e = engine.explain({ client: '10.1.9.9', qname: 'X.Tracker.Example.' });
    assert.equal(e.decision, 'filtered');
    assert.equal(e.rcode, 'NXDOMAIN');
    assert.deepEqual(e.rule, { stage: 'domain', list: null, entry: 'tracker.example' });
    assert.equal(e.upstream, null);
    const domain = e.steps.find((s) => s.stage === 'domain');
    assert.equal(domain?.verdict, 'filtered');
    assert.equal(domain?.rule, 'deny');
  });

  test('an allow entry beats a deny entry above it, and is the rule that decided', () => {
    const e = engine.explain({ client: '10.1.9.9', qname: 'www.ok.ads.example' });
    assert.equal(e.decision, 'allowed');
    assert.deepEqual(e.rule, { stage: 'domain', list: null, entry: 'ok.ads.example' });
  });

  test('suffixes match on label boundaries only', () => {
    assert.equal(engine.explain({ client: '10.1.9.9', qname: 'notads.example' }).decision, 'allowed');
    assert.equal(engine.explain({ client: '10.1.9.9', qname: 'ads.example' }).decision, 'filtered');
  });

  test('query-type deny entry, and the steps after it are not reached', () => {
    const e = engine.explain({ client: '10.1.9.9', qname: 'ads.example', qtype: 'any' });
    assert.equal(e.decision, 'filtered');
    assert.deepEqual(e.rule, { stage: 'query-type', list: null, entry: 'ANY' });
    const domain = e.steps.find((s) => s.stage === 'domain');
    assert.equal(domain?.reached, false);
    assert.equal(domain?.verdict, 'filtered', 'the later verdict is still shown');
  });

  test('allow-lists: a type or a name not listed is filtered; drop sends nothing', () => {
    const type = engine.explain({ client: '10.1.2.9', qname: 'lab.example', qtype: 'MX' });
    assert.equal(type.decision, 'filtered');
    assert.deepEqual(type.rule, { stage: 'query-type', list: null, entry: null });
    assert.equal(type.steps.find((s) => s.stage === 'query-type')?.rule, 'not-allowed');
    assert.equal(type.rcode, null);
    assert.equal(type.answer, 'drop');
    const name = engine.explain({ client: '10.1.2.9', qname: 'elsewhere.example' });
    assert.equal(name.decision, 'filtered');
    assert.equal(name.answer, 'drop');
    const ok = engine.explain({ client: '10.1.2.9', qname: 'db.lab.example', qtype: 'AAAA' });
    assert.equal(ok.decision, 'allowed');
    assert.deepEqual(ok.rule, { stage: 'domain', list: null, entry: 'lab.example' });
  });

  test('a denying policy answers per deny_with whatever the name', () => {
    const e = engine.explain({ client: '192.0.2.44', qname: 'www.example' });
    assert.equal(e.decision, 'denied');
    assert.equal(e.rcode, 'REFUSED');
    assert.deepEqual(e.rule, { stage: 'action', list: null, entry: null });
  });

  test('the rate limit is reported as configured, with what the transport gets over it', () => {
    const udp = engine.explain({ client: '198.51.100.1', qname: 'www.example' });
    const rl = udp.steps.find((s) => s.stage === 'rate-limit');
    assert.equal(rl?.verdict, 'as_configured');
    assert.match(rl?.detail ?? '', /qps 5, burst 5, .*TC=1/);
    const tcp = engine.explain({ client: '198.51.100.1', qname: 'www.example', transport: 'tcp' });
    assert.match(tcp.steps.find((s) => s.stage === 'rate-limit')?.detail ?? '', /REFUSED/);
  });
});

describe('audit mode', () => {
  test('what would be filtered is allowed, forwarded, and named in would', () => {
    const e = engine.explain({ client: '198.51.100.1', qname: 'ads.example', qtype: 'TXT' });
    assert.equal(e.decision, 'allowed');
    assert.equal(e.would, 'filtered');
    assert.equal(e.mode, 'audit');
    assert.equal(e.rcode, null);
    assert.equal(e.upstream, 'default');
    // The first step that would block decides, as in enforce mode: the type, not the name.
    assert.deepEqual(e.rule, { stage: 'query-type', list: null, entry: 'TXT' });
    assert.ok(
      e.steps.every((s) => s.reached),
      'in audit mode every step runs',
    );
  });

  test('a denying policy in audit forwards everything, would be denied', () => {
    const e = engine.explain({ client: '203.0.113.9', qname: 'www.example' });
    assert.deepEqual([e.decision, e.would, e.upstream], ['allowed', 'denied', 'default']);
  });

  test('a query audit mode would allow too has would null', () => {
    const e = engine.explain({ client: '198.51.100.1', qname: 'www.example' });
    assert.deepEqual([e.decision, e.would, e.mode], ['allowed', null, 'audit']);
  });
});

describe('input', () => {
  test('bad clients, names and types are QueryInputErrors naming the field', () => {
    const cases: [Parameters<PolicyEngine['explain']>[0], string][] = [
      [{ client: '10.1.2.300', qname: 'a.example' }, 'client'],
      [{ client: '10.1.0.0/16', qname: 'a.example' }, 'client'],
      [{ client: 'fe80::1%eth0', qname: 'a.example' }, 'client'],
      [{ client: '10.1.2.3', qname: 'a..example' }, 'qname'],
      [{ client: '10.1.2.3', qname: `${'x'.repeat(64)}.example` }, 'qname'],
      [{ client: '10.1.2.3', qname: 'a b.example' }, 'qname'],
      [{ client: '10.1.2.3', qname: 'a.example', qtype: 'NOPE' }, 'qtype'],
    ];
    for (const [query, field] of cases) {
      assert.throws(
        () => engine.explain(query),
        (err: unknown) => err instanceof QueryInputError && err.field === field,
        JSON.stringify(query),
      );
    }
  });

  test('the root and TYPEn work', () => {
    const e = engine.explain({ client: '10.1.9.9', qname: '.', qtype: 'TYPE65' });
    assert.equal(e.qname, '.');
    assert.equal(e.qtype, 'HTTPS');
    assert.equal(e.decision, 'allowed');
  });
});
