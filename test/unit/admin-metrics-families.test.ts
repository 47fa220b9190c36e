// Tests the metric families DESIGN.md names for lists, PROXY protocol and encrypted listeners:
// announced (HELP and TYPE) from startup with no series, then exact values once Counters has them;
// and the exposition follows the naming convention `promtool check metrics` enforces.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { Counters } from '../../src/metrics/counters.js';

const FAMILIES = [
  ['dns_tool_list_entries', 'gauge'],
  ['dns_tool_list_hits_total', 'counter'],
  ['dns_tool_list_refreshes_total', 'counter'],
  ['dns_tool_list_last_success_timestamp_seconds', 'gauge'],
  ['dns_tool_proxy_protocol_errors_total', 'counter'],
  ['dns_tool_listener_cert_reloads_total', 'counter'],
  ['dns_tool_listener_cert_expiry_timestamp_seconds', 'gauge'],
] as const;

function samples(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('families of features that may have no series yet', () => {
  test('are announced with HELP and TYPE by an empty Counters', async () => {
    const text = await createMetricsRegistry(new Counters()).metrics();
    for (const [name, type] of FAMILIES) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} has a HELP line`);
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`);
    }
    for (const [name] of FAMILIES) {
      const expected = name === 'dns_tool_proxy_protocol_errors_total' ? [`${name} 0`] : [];
      assert.deepEqual(samples(text, name), expected, name);
    }
  });

  test('list series carry the list name, every mode and result from the first scrape', async () => {
    const c = new Counters();
    c.listEntries.set('threats', 120_000);
    c.forListHits('threats').audit = 4;
    const refreshes = c.forListRefreshes('threats');
    refreshes.success = 2;
    refreshes.failure = 1;
    c.listLastSuccess.set('threats', 1767225600);
    const text = await createMetricsRegistry(c).metrics();
    assert.deepEqual(samples(text, 'dns_tool_list_entries'), [
      'dns_tool_list_entries{list="threats"} 120000',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_list_hits_total'), [
      'dns_tool_list_hits_total{list="threats",mode="enforce"} 0',
      'dns_tool_list_hits_total{list="threats",mode="audit"} 4',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_list_refreshes_total'), [
      'dns_tool_list_refreshes_total{list="threats",result="success"} 2',
      'dns_tool_list_refreshes_total{list="threats",result="not_modified"} 0',
      'dns_tool_list_refreshes_total{list="threats",result="failure"} 1',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_list_last_success_timestamp_seconds'), [
      'dns_tool_list_last_success_timestamp_seconds{list="threats"} 1767225600',
    ]);
  });

  test('PROXY errors and listener certificates follow Counters at each scrape', async () => {
    const c = new Counters();
    const registry = createMetricsRegistry(c);
    c.proxyProtocolErrors = 3;
    c.forListenerCertReloads('dot').failure = 1;
    c.listenerCertExpiry.set('dot', 1767225600);
    let text = await registry.metrics();
    assert.deepEqual(samples(text, 'dns_tool_proxy_protocol_errors_total'), [
      'dns_tool_proxy_protocol_errors_total 3',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_listener_cert_reloads_total'), [
      'dns_tool_listener_cert_reloads_total{listener="dot",result="success"} 0',
      'dns_tool_listener_cert_reloads_total{listener="dot",result="failure"} 1',
    ]);
    assert.deepEqual(samples(text, 'dns_tool_listener_cert_expiry_timestamp_seconds'), [
      'dns_tool_listener_cert_expiry_timestamp_seconds{listener="dot"} 1767225600',
    ]);
    c.forListenerCertReloads('dot').success += 1;
    c.listenerCertExpiry.set('dot', 1800000000);
    text = await registry.metrics();
    assert.ok(
      samples(text, 'dns_tool_listener_cert_reloads_total').includes(
        'dns_tool_listener_cert_reloads_total{listener="dot",result="success"} 1',
      ),
    );
    assert.deepEqual(samples(text, 'dns_tool_listener_cert_expiry_timestamp_seconds'), [
      'dns_tool_listener_cert_expiry_timestamp_seconds{listener="dot"} 1800000000',
    ]);
  });
});

test('only counters end in _total (the convention promtool check metrics enforces)', async () => {
  const text = await createMetricsRegistry(new Counters()).metrics();
  const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]] as const);
  assert.ok(types.length > 20, 'default process metrics are there too');
  const misnamed = types.filter(([name, type]) => name.endsWith('_total') && type !== 'counter');
  assert.deepEqual(misnamed, []);
  // The per-type gauges the removed totals summed are still exposed.
  assert.match(text, /^# TYPE nodejs_active_handles gauge$/m);
});
