// What a worker's counters look like after the trip to the primary: every family that the
// primary's /metrics exposes must survive snapshot → IPC (JSON) → sum, or a worker's counts
// silently vanish with workers: N.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counters, upstreamServerKey } from '../../src/metrics/counters.js';
import {
  addSnapshot,
  clearCounters,
  countsOnly,
  snapshotCounters,
} from '../../src/workers/counters-snapshot.js';

function worker(auditDenied: number, up: boolean): Counters {
  const c = new Counters();
  c.forPolicy('office').allowed = 3;
  c.forAudit('office').denied = auditDenied;
  c.forAudit('office').rate_limited = 1;
  c.certExpiry.set('192.0.2.1:853', 2_000_000_000 + auditDenied);
  c.upstreamUp = new Map([[upstreamServerKey('default', '192.0.2.1:853'), { up }]]);
  return c;
}

const viaIpc = (c: Counters) => JSON.parse(JSON.stringify(snapshotCounters(c)));

test('audit counts, decisions and gauges of every live worker reach the primary', () => {
  const primary = new Counters();
  clearCounters(primary);
  addSnapshot(primary, viaIpc(worker(2, true)));
  addSnapshot(primary, viaIpc(worker(5, false)));
  assert.deepEqual(primary.audit.get('office'), { denied: 7, rate_limited: 2, filtered: 0 });
  assert.equal(primary.forPolicy('office').allowed, 6);
  assert.equal(primary.certExpiry.get('192.0.2.1:853'), 2_000_000_002, 'the earliest expiry');
  assert.deepEqual(
    primary.upstreamUp.get(upstreamServerKey('default', '192.0.2.1:853')),
    { up: false },
    'down in one live worker: reported down',
  );
});

test("a dead worker's counts stay, its gauges go", () => {
  const primary = new Counters();
  clearCounters(primary);
  addSnapshot(primary, countsOnly(viaIpc(worker(4, false))));
  assert.deepEqual(primary.audit.get('office'), { denied: 4, rate_limited: 1, filtered: 0 });
  assert.equal(primary.certExpiry.size, 0);
  assert.equal(primary.upstreamUp.size, 0);
});
