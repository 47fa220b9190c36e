// Tests the Prometheus text produced from a Counters object: exact names, labels, types and values.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL } from '../../src/dns/constants.js';
import { Counters, UNMATCHED_POLICY } from '../../src/metrics/counters.js';

/** The exposition lines of one metric family (HELP, TYPE and samples), in output order. */
function family(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter(
      (line) =>
        line.startsWith(`# HELP ${name} `) ||
        line.startsWith(`# TYPE ${name} `) ||
        line.startsWith(`${name}{`) ||
        line.startsWith(`${name} `) ||
        line.startsWith(`${name}_bucket{`) ||
        line.startsWith(`${name}_sum `) ||
        line.startsWith(`${name}_count `),
    );
}

function samples(text: string, name: string): string[] {
  return family(text, name).filter((line) => !line.startsWith('#'));
}

function filledCounters(): Counters {
  const c = new Counters();
  const office = c.forPolicy('office');
  office.allowed = 120;
  office.denied = 3;
  office.rate_limited = 7;
  office.filtered = 11;
  c.forPolicy('guests').allowed = 5;
  c.forPolicy(UNMATCHED_POLICY).unmatched = 9;
  c.responses[RCODE_NOERROR] = 100;
  c.responses[RCODE_SERVFAIL] = 2;
  c.responses[RCODE_NXDOMAIN] = 20;
  c.responses[RCODE_REFUSED] = 12;
  c.cacheHits = 40;
  c.cacheMisses = 85;
  c.malformed = 4;
  c.upstreamMismatched = 1;
  const cf = c.forUpstream('default', '1.1.1.1:853');
  cf.ok = 80;
  cf.error = 2;
  cf.timeout = 3;
  c.forUpstream('backup', '9.9.9.9:853').ok = 5;
  c.pinFailure('9.9.9.9:853');
  c.pinFailure('9.9.9.9:853');
  c.certExpiry.set('1.1.1.1:853', 1767225600);
  c.reloads.success = 2;
  for (const seconds of [0.0004, 0.003, 0.003, 0.04, 0.7, 9]) c.upstreamDuration.observe(seconds);
  return c;
}

describe('createMetricsRegistry', () => {
  test('exposes queries by policy and decision, unmatched clients as policy "(unmatched)"', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    assert.deepEqual(family(text, 'dns_tool_queries_total'), [
      '# HELP dns_tool_queries_total Queries received, by matched policy and pipeline decision.',
      '# TYPE dns_tool_queries_total counter',
      'dns_tool_queries_total{policy="office",decision="allowed"} 120',
      'dns_tool_queries_total{policy="office",decision="denied"} 3',
      'dns_tool_queries_total{policy="office",decision="rate_limited"} 7',
      'dns_tool_queries_total{policy="office",decision="filtered"} 11',
      'dns_tool_queries_total{policy="guests",decision="allowed"} 5',
      'dns_tool_queries_total{policy="guests",decision="denied"} 0',
      'dns_tool_queries_total{policy="guests",decision="rate_limited"} 0',
      'dns_tool_queries_total{policy="guests",decision="filtered"} 0',
      'dns_tool_queries_total{policy="(unmatched)",decision="unmatched"} 9',
    ]);
  });

  test('exposes audit counts by policy and would-be decision; the family is there from startup', async () => {
    const empty = await createMetricsRegistry(new Counters()).metrics();
    assert.deepEqual(family(empty, 'dns_tool_audit_total'), [
      '# HELP dns_tool_audit_total Queries a policy in audit mode answered as allowed, by policy and the decision enforce mode would have taken.',
      '# TYPE dns_tool_audit_total counter',
    ]);
    const counters = filledCounters();
    counters.forAudit('trial').filtered = 4;
    counters.forAudit('trial').rate_limited = 1;
    const text = await createMetricsRegistry(counters).metrics();
    assert.deepEqual(samples(text, 'dns_tool_audit_total'), [
      'dns_tool_audit_total{policy="trial",decision="denied"} 0',
      'dns_tool_audit_total{policy="trial",decision="rate_limited"} 1',
      'dns_tool_audit_total{policy="trial",decision="filtered"} 4',
    ]);
  });

  test('exposes non-zero responses by RCODE name', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    assert.deepEqual(family(text, 'dns_tool_responses_total'), [
      '# HELP dns_tool_responses_total Responses sent to clients, by RCODE.',
      '# TYPE dns_tool_responses_total counter',
      'dns_tool_responses_total{rcode="NOERROR"} 100',
      'dns_tool_responses_total{rcode="SERVFAIL"} 2',
      'dns_tool_responses_total{rcode="NXDOMAIN"} 20',
      'dns_tool_responses_total{rcode="REFUSED"} 12',
    ]);
  });

  test('exposes plain counters as counters', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    for (const [name, value] of [
      ['dns_tool_cache_hits_total', 40],
      ['dns_tool_cache_misses_total', 85],
      ['dns_tool_malformed_total', 4],
      ['dns_tool_upstream_mismatched_total', 1],
    ] as const) {
      const lines = family(text, name);
      assert.equal(lines[1], `# TYPE ${name} counter`);
      assert.deepEqual(lines.slice(2), [`${name} ${value}`]);
    }
  });

  test('exposes upstream requests with set and server split from the Counters key', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    assert.equal(
      family(text, 'dns_tool_upstream_requests_total')[1],
      '# TYPE dns_tool_upstream_requests_total counter',
    );
    assert.deepEqual(samples(text, 'dns_tool_upstream_requests_total'), [
      'dns_tool_upstream_requests_total{upstream="default",server="1.1.1.1:853",result="ok"} 80',
      'dns_tool_upstream_requests_total{upstream="default",server="1.1.1.1:853",result="error"} 2',
      'dns_tool_upstream_requests_total{upstream="default",server="1.1.1.1:853",result="timeout"} 3',
      'dns_tool_upstream_requests_total{upstream="backup",server="9.9.9.9:853",result="ok"} 5',
      'dns_tool_upstream_requests_total{upstream="backup",server="9.9.9.9:853",result="error"} 0',
      'dns_tool_upstream_requests_total{upstream="backup",server="9.9.9.9:853",result="timeout"} 0',
    ]);
  });

  test('exposes the upstream duration histogram with cumulative buckets', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    const name = 'dns_tool_upstream_duration_seconds';
    assert.equal(family(text, name)[1], `# TYPE ${name} histogram`);
    assert.deepEqual(samples(text, name), [
      `${name}_bucket{le="0.0005"} 1`,
      `${name}_bucket{le="0.001"} 1`,
      `${name}_bucket{le="0.0025"} 1`,
      `${name}_bucket{le="0.005"} 3`,
      `${name}_bucket{le="0.01"} 3`,
      `${name}_bucket{le="0.025"} 3`,
      `${name}_bucket{le="0.05"} 4`,
      `${name}_bucket{le="0.1"} 4`,
      `${name}_bucket{le="0.25"} 4`,
      `${name}_bucket{le="0.5"} 4`,
      `${name}_bucket{le="1"} 5`,
      `${name}_bucket{le="2.5"} 5`,
      `${name}_bucket{le="5"} 5`,
      `${name}_bucket{le="+Inf"} 6`,
      `${name}_sum ${0.0004 + 0.003 + 0.003 + 0.04 + 0.7 + 9}`,
      `${name}_count 6`,
    ]);
  });

  test('exposes pin failures, certificate expiry and reloads', async () => {
    const text = await createMetricsRegistry(filledCounters()).metrics();
    assert.deepEqual(family(text, 'dns_tool_upstream_pin_failures_total').slice(1), [
      '# TYPE dns_tool_upstream_pin_failures_total counter',
      'dns_tool_upstream_pin_failures_total{server="9.9.9.9:853"} 2',
    ]);
    assert.deepEqual(family(text, 'dns_tool_upstream_cert_expiry_timestamp_seconds').slice(1), [
      '# TYPE dns_tool_upstream_cert_expiry_timestamp_seconds gauge',
      'dns_tool_upstream_cert_expiry_timestamp_seconds{server="1.1.1.1:853"} 1767225600',
    ]);
    assert.deepEqual(family(text, 'dns_tool_config_reloads_total').slice(1), [
      '# TYPE dns_tool_config_reloads_total counter',
      'dns_tool_config_reloads_total{result="success"} 2',
      'dns_tool_config_reloads_total{result="failure"} 0',
    ]);
  });

  test('empty Counters still show the always-present series', async () => {
    const text = await createMetricsRegistry(new Counters()).metrics();
    assert.deepEqual(samples(text, 'dns_tool_queries_total'), [
      'dns_tool_queries_total{policy="(unmatched)",decision="unmatched"} 0',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_responses_total'), []);
    assert.deepEqual(samples(text, 'dns_tool_config_reloads_total'), [
      'dns_tool_config_reloads_total{result="success"} 0',
      'dns_tool_config_reloads_total{result="failure"} 0',
    ]);
    assert.ok(
      samples(text, 'dns_tool_upstream_duration_seconds').includes(
        'dns_tool_upstream_duration_seconds_count 0',
      ),
    );
    // Families without series still announce their type, so dashboards can find them.
    assert.ok(text.includes('# TYPE dns_tool_upstream_pin_failures_total counter'));
  });

  test('each scrape copies the current values', async () => {
    const counters = filledCounters();
    const registry = createMetricsRegistry(counters);
    await registry.metrics();
    counters.forPolicy('office').allowed += 1;
    counters.cacheHits += 10;
    counters.reloads.failure += 1;
    counters.responses[RCODE_REFUSED] = 0;
    const text = await registry.metrics();
    assert.ok(
      samples(text, 'dns_tool_queries_total').includes(
        'dns_tool_queries_total{policy="office",decision="allowed"} 121',
      ),
    );
    assert.deepEqual(samples(text, 'dns_tool_cache_hits_total'), ['dns_tool_cache_hits_total 50']);
    assert.ok(
      samples(text, 'dns_tool_config_reloads_total').includes(
        'dns_tool_config_reloads_total{result="failure"} 1',
      ),
    );
    assert.ok(!text.includes('rcode="REFUSED"'));
  });

  test('registries are per gateway, with default process metrics and nothing in the global registry', async () => {
    const a = createMetricsRegistry(filledCounters());
    const b = createMetricsRegistry(new Counters());
    const textA = await a.metrics();
    const textB = await b.metrics();
    assert.deepEqual(samples(textA, 'dns_tool_cache_hits_total'), ['dns_tool_cache_hits_total 40']);
    assert.deepEqual(samples(textB, 'dns_tool_cache_hits_total'), ['dns_tool_cache_hits_total 0']);
    assert.match(textA, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(textA, /^nodejs_heap_size_total_bytes \d+$/m);
    assert.equal(a.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    assert.ok(!(await globalRegistry.metrics()).includes('dns_tool_'));
  });

  test('escapes label values taken from config names', async () => {
    const counters = new Counters();
    counters.forPolicy('lab "west"\\2').allowed = 1;
    const text = await createMetricsRegistry(counters).metrics();
    assert.ok(
      samples(text, 'dns_tool_queries_total').includes(
        'dns_tool_queries_total{policy="lab \\"west\\"\\\\2",decision="allowed"} 1',
      ),
    );
  });
});
