// dns_tool_upstream_up as Prometheus text: exposed (HELP, TYPE) with no server at all,
// one series per set and server read live at scrape time, and only the running servers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetricsRegistry } from '../../src/admin/metrics.js';
import { Counters, upstreamServerKey } from '../../src/metrics/counters.js';

function family(text: string): string[] {
  return text.split('\n').filter((l) => /^(# (HELP|TYPE) )?dns_tool_upstream_up[ {]/.test(l));
}

test('exposed from startup, whatever the config: HELP and TYPE with no series', async () => {
  const text = await createMetricsRegistry(new Counters()).metrics();
  assert.deepEqual(family(text), [
    '# HELP dns_tool_upstream_up Whether each server of each upstream set of the running config is usable (1) or down (0).',
    '# TYPE dns_tool_upstream_up gauge',
  ]);
});

test('one series per set and server, read at scrape time; a replaced map drops servers that left', async () => {
  const counters = new Counters();
  const registry = createMetricsRegistry(counters);
  const a = { up: true };
  const b = { up: false };
  counters.upstreamUp = new Map([
    [upstreamServerKey('default', '1.1.1.1:853'), a],
    [upstreamServerKey('default', '9.9.9.9:853'), b],
    [upstreamServerKey('corp', '1.1.1.1:853'), a],
  ]);
  assert.deepEqual(family(await registry.metrics()).slice(2), [
    'dns_tool_upstream_up{upstream="default",server="1.1.1.1:853"} 1',
    'dns_tool_upstream_up{upstream="default",server="9.9.9.9:853"} 0',
    'dns_tool_upstream_up{upstream="corp",server="1.1.1.1:853"} 1',
  ]);
  a.up = false;
  b.up = true;
  counters.upstreamUp = new Map([
    [upstreamServerKey('default', '1.1.1.1:853'), a],
    [upstreamServerKey('default', '9.9.9.9:853'), b],
  ]);
  assert.deepEqual(family(await registry.metrics()).slice(2), [
    'dns_tool_upstream_up{upstream="default",server="1.1.1.1:853"} 0',
    'dns_tool_upstream_up{upstream="default",server="9.9.9.9:853"} 1',
  ]);
});
