// The CI-sized run of the whole-server fuzzer (`npm run fuzz` sends 1,000,000): 20,000 mutated and
// random packets over UDP and TCP at the built gateway, with the in-process DoT upstream.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSummary, runFuzz } from '../../bench/fuzz/run.js';

/** FUZZ_SEED reruns a failure (the summary prints the seed and each bad packet's index). */
const SEED = Number(process.env.FUZZ_SEED ?? 20_000);

test('20,000 fuzzed packets: the gateway lives, memory stays bounded, every reply parses and echoes its query', {
  timeout: 180_000,
}, async (t) => {
  const s = await runFuzz({ count: 20_000, seed: SEED, maxSeconds: 90, maxRssMiB: 512 });
  t.diagnostic(formatSummary(s, 3));
  assert.equal(s.sent.udp + s.sent.tcp, 20_000, 'every packet was sent within the time bound');
  assert.ok(s.replies.udp > 5000 && s.replies.tcp > 100, 'the gateway answered what it should answer');
  assert.ok((s.malformedTotal ?? 0) > 1000, 'malformed packets were seen and counted');
  assert.equal(s.failures, 0, `bad replies: ${JSON.stringify(s.failureReasons)}`);
  assert.equal(s.alive, true, 'the gateway process is alive');
  assert.equal(s.healthz, 200);
  assert.deepEqual(s.after, { udp: 'NOERROR', tcp: 'NOERROR' }, 'a valid query answers afterwards');
  assert.ok(s.rss.maxMiB <= 512, `RSS peaked at ${s.rss.maxMiB} MiB`);
  assert.equal(s.exit.code, 0, 'SIGTERM still exits cleanly');
  assert.equal(s.ok, true);
});
