import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TimerWheel, WHEEL_TICK_MS } from '../../src/upstream/timer-wheel.js';

/** The wheel ticks on a real interval; the clock it compares against is injected. */
function fakeClock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const ticks = (n: number) => sleep(WHEEL_TICK_MS * n + 5);

test('a timer fires once its time has come, not before', async () => {
  const clock = fakeClock();
  const wheel = new TimerWheel(clock.now);
  let fired = 0;
  wheel.schedule({ onTimer: () => fired++ }, clock.now() + 100);
  await ticks(3);
  assert.equal(fired, 0, 'clock has not reached fireAt');
  clock.advance(99);
  await ticks(3);
  assert.equal(fired, 0, 'one ms early still waits');
  clock.advance(1);
  await ticks(3);
  assert.equal(fired, 1);
  clock.advance(1000);
  await ticks(3);
  assert.equal(fired, 1, 'fires once');
});

test('a cancelled timer never fires; others in its bucket do', async () => {
  const clock = fakeClock();
  const wheel = new TimerWheel(clock.now);
  const fired: string[] = [];
  const a = wheel.schedule({ onTimer: () => fired.push('a') }, clock.now() + 10);
  wheel.schedule({ onTimer: () => fired.push('b') }, clock.now() + 10);
  a.cancel();
  clock.advance(20);
  await ticks(3);
  assert.deepEqual(fired, ['b']);
});

test('timers fire in any order of scheduling, each when due', async () => {
  const clock = fakeClock();
  const wheel = new TimerWheel(clock.now);
  const fired: number[] = [];
  for (const d of [300, 10, 200, 10, 50]) wheel.schedule({ onTimer: () => fired.push(d) }, clock.now() + d);
  clock.advance(60);
  await ticks(3);
  assert.deepEqual(
    fired.sort((x, y) => x - y),
    [10, 10, 50],
  );
  clock.advance(300);
  await ticks(3);
  assert.deepEqual(
    fired.sort((x, y) => x - y),
    [10, 10, 50, 200, 300],
  );
});
