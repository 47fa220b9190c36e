import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SlotStore } from '../../src/stages/slot-store.js';

test('slots of different sizes never overlap, and each keeps what was written into it', () => {
  const store = new SlotStore();
  const sizes = [1, 100, 128, 129, 300, 1000, 5000, 20000, 70000];
  const handles = sizes.map((size, i) => {
    const h = store.allocate(size);
    assert.ok(h >= 0, `size ${size} gets a slot`);
    store.bufferOf(h).fill(i + 1, store.offsetOf(h), store.offsetOf(h) + size);
    return h;
  });
  assert.equal(new Set(handles).size, handles.length);
  for (let i = 0; i < sizes.length; i++) {
    const buf = store.bufferOf(handles[i]);
    const at = store.offsetOf(handles[i]);
    assert.ok(at + sizes[i] <= buf.length, 'the slot lies inside its buffer');
    for (let j = 0; j < sizes[i]; j++) assert.equal(buf[at + j], i + 1);
  }
});

test('small slots share 64 KiB slabs: 10,000 records of 100 bytes take 20 slabs of 128-byte slots', () => {
  const store = new SlotStore();
  const offsets = new Map<Buffer, Set<number>>();
  for (let i = 0; i < 10_000; i++) {
    const h = store.allocate(100);
    const buf = store.bufferOf(h);
    const at = store.offsetOf(h);
    const used = offsets.get(buf) ?? new Set<number>();
    assert.ok(!used.has(at), 'no two live records share a slot');
    used.add(at);
    offsets.set(buf, used);
  }
  assert.equal(offsets.size, Math.ceil(10_000 / 512));
  assert.equal(store.bytes, offsets.size * 64 * 1024);
});

test('a released slot is reused before the store grows', () => {
  const store = new SlotStore();
  const a = store.allocate(200);
  store.allocate(200);
  const before = store.bytes;
  store.release(a);
  assert.equal(store.allocate(250), a);
  assert.equal(store.bytes, before);
});

test('a class whose last slot is released gives its memory back', () => {
  const store = new SlotStore();
  const small = store.allocate(50);
  const big = Array.from({ length: 20 }, () => store.allocate(10_000));
  assert.equal(store.bytes, 64 * 1024 + 20 * 16384);
  for (const h of big) store.release(h);
  assert.equal(store.bytes, 64 * 1024, 'only the small class still holds a slab');
  const again = store.allocate(10_000);
  assert.equal(store.offsetOf(again), 0, 'the emptied class starts over');
  store.release(small);
  store.release(again);
  assert.equal(store.bytes, 0);
});

test('a record larger than the largest slot is refused', () => {
  const store = new SlotStore();
  assert.equal(store.allocate(SlotStore.MAX_SIZE + 1), -1);
  assert.ok(store.allocate(SlotStore.MAX_SIZE) >= 0);
});
