// Upstream faults under a steady load, with Debian's unbound as the real DoT upstream behind a
// fault proxy: killed and restarted, connections reset, slow handshakes, and the certificate
// rotated to the backup pin (keeps working) and to a key in no pin (fails closed).
// `npm run faults` prints the same windows as a table.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, QUERY_TIMEOUT_MS } from '../../bench/faults/lab.js';
import {
  certificateRotation,
  type FaultWindow,
  formatTable,
  killAndRestart,
  resets,
  type ScenarioResult,
  slowHandshakes,
} from '../../bench/faults/scenarios.js';
import { skipUnlessBinaries } from '../helpers/binaries.js';

/** Windows shortened for CI; `npm run faults` runs them at full length. */
const SCALE = 0.5;
const QPS = 200;
/** Scheduling slack on a loaded machine on top of the gateway's own bound. */
const SLACK_MS = 750;

/** Every query got an answer (NOERROR or SERVFAIL), none later than limits.timeout_ms. */
function everyQueryAnswered(r: ScenarioResult): void {
  for (const w of r.windows) {
    const where = `${r.scenario} / ${w.window}`;
    assert.ok(w.sent > 0, `${where}: no load`);
    assert.equal(w.lost, 0, `${where}: ${w.lost} of ${w.sent} queries never answered`);
    assert.equal(w.other, 0, `${where}: answers other than NOERROR and SERVFAIL`);
    assert.equal(w.noerror + w.servfail, w.sent, where);
    assert.ok(w.maxMs <= QUERY_TIMEOUT_MS + SLACK_MS, `${where}: an answer took ${w.maxMs} ms`);
  }
}

function windowOf(r: ScenarioResult, prefix: string): FaultWindow {
  const w = r.windows.find((x) => x.window.startsWith(prefix));
  assert.ok(w, `no window "${prefix}" in ${r.scenario}`);
  return w;
}

describe('upstream faults (unbound)', {
  skip: skipUnlessBinaries('unbound', 'unbound-checkconf', 'openssl'),
}, () => {
  let lab: Lab | null = null;

  before(async () => {
    lab = await Lab.start({ qps: QPS });
    assert.ok(await lab.waitHealthy(20_000), 'steady NOERROR before any fault');
  });

  after(async () => {
    await lab?.close();
  });

  test('killed and restarted under load: SERVFAIL while dead, every query answered, recovery after', async (t) => {
    const r = await killAndRestart(lab!, SCALE);
    t.diagnostic(formatTable([r]));
    everyQueryAnswered(r);
    const dead = windowOf(r, 'upstream dead');
    assert.equal(dead.noerror, 0, 'nothing answers NOERROR with the upstream gone');
    assert.equal(r.facts.healthy, 1, 'steady NOERROR again after the restart');
    assert.ok(r.recoveryMs !== null && r.recoveryMs <= 7000, `recovered after ${r.recoveryMs} ms`);
  });

  test('1 in 3 upstream connections reset (mid-stream and at accept): every query answered, recovery after', async (t) => {
    const r = await resets(lab!, SCALE, 3);
    t.diagnostic(formatTable([r]));
    everyQueryAnswered(r);
    assert.ok(r.facts.connections >= 6, `the gateway reconnected (${r.facts.connections} connections)`);
    assert.ok(r.facts.resets >= 2, `connections were reset (${r.facts.resets})`);
    assert.equal(r.facts.healthy, 1);
    assert.ok(r.recoveryMs !== null && r.recoveryMs <= 7000, `recovered after ${r.recoveryMs} ms`);
  });

  test('slow TLS handshakes, below and above timeout_ms: every query answered in time, recovery after', async (t) => {
    const r = await slowHandshakes(lab!, SCALE);
    t.diagnostic(formatTable([r]));
    everyQueryAnswered(r);
    assert.ok(r.facts.connections >= 3, `handshakes happened under the fault (${r.facts.connections})`);
    assert.equal(r.facts.healthy, 1);
    assert.ok(r.recoveryMs !== null && r.recoveryMs <= 7000, `recovered after ${r.recoveryMs} ms`);
  });

  let rotation: ScenarioResult | null = null;

  test('certificate rotated: the backup pin keeps working, a key in no pin fails closed', async (t) => {
    const r = await certificateRotation(lab!, SCALE);
    rotation = r;
    t.diagnostic(formatTable([r]));
    everyQueryAnswered(r);
    // backup pin: accepted without a single pin failure, and answers flow again
    assert.equal(r.facts.pinFailuresWithBackupKey, 0);
    assert.ok(r.facts.backupRecoveryMs >= 0, 'steady NOERROR with the backup-pin key');
    assert.ok(r.facts.queriesReachingBackupServer > 0, 'the query log sees queries that do reach a server');
    // unpinned key of the same CA: refused at the handshake, SERVFAIL for every query, nothing sent
    const unpinned = windowOf(r, 'key in no pin');
    assert.equal(unpinned.noerror, 0, 'no answer came through an unpinned server');
    assert.equal(unpinned.servfail, unpinned.sent);
    assert.ok(r.facts.pinFailuresWithUnpinnedKey > 0, 'pin failures counted');
    assert.equal(r.facts.queriesReachingUnpinnedServer, 0, 'no query reached the unpinned server');
    assert.equal(r.facts.healthy, 1, 'steady NOERROR once the pinned key is back');
  });

  // DESIGN.md, Upstream: "A server whose TLS or pin check fails is not tried again for client
  // queries until a background probe succeeds (backoff)". Probes back off from 1 s, so a few
  // seconds allow a handful of handshakes, not one per client query.
  test('a server that failed its pin check gets no handshake per client query, only probes', () => {
    assert.ok(rotation, 'the rotation scenario ran');
    const { connectionsToUnpinnedServer: handshakes, unpinnedWindowMs } = rotation.facts;
    const queries = windowOf(rotation, 'key in no pin').sent;
    assert.ok(
      handshakes <= 2 + Math.ceil(unpinnedWindowMs / 1000),
      `${handshakes} TLS handshakes with the unpinned server in ${unpinnedWindowMs} ms for ${queries} client queries`,
    );
  });
});
