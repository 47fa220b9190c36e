// Unit and property tests for the cache's slot store (src/stages/slot-store.ts): size
// classes, the memory it counts, compaction on release and the byte budget.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SlotStore } from '../../src/stages/slot-store.js';

/** The answer cache's metadata per entry (META_SIZE in src/stages/cache.ts). */
const CACHE_META = 28;
/** Each slot's owner handle at the end of its slab. */
const OWNER = 4;

/** Fill a slot with bytes that name `id`, so a record moved over another shows. */
function pattern(id: number, size: number): Buffer {
  const out = Buffer.alloc(size, (id * 37 + 1) & 0xff);
  if (size >= 4) out.writeUInt32LE(id, 0);
  return out;
}

function write(store: SlotStore, handle: number, bytes: Buffer): void {
  bytes.copy(store.bufferOf(handle), store.offsetOf(handle));
}

function read(store: SlotStore, handle: number, size: number): Buffer {
  const at = store.offsetOf(handle);
  return store.bufferOf(handle).subarray(at, at + size);
}

test('every record of 24 bytes up to MAX_SIZE gets a slot with at most a quarter unused', () => {
  const classes = SlotStore.CLASS_SIZES;
  for (let i = 1; i < classes.length; i++) assert.ok(classes[i] > classes[i - 1]);
  assert.ok(SlotStore.MAX_SIZE >= CACHE_META + 65535 + 2 * Math.floor((65535 - 12) / 11));
  let worst = 0;
  for (let size = 24; size <= SlotStore.MAX_SIZE; size++) {
    const slot = SlotStore.slotSize(size);
    assert.ok(slot >= size, `size ${size} fits its slot ${slot}`);
    assert.ok(4 * (slot - size) <= slot, `size ${size}: slot ${slot} is more than a quarter unused`);
    worst = Math.max(worst, (slot - size) / slot);
  }
  assert.ok(worst <= 0.25);
  assert.equal(SlotStore.slotSize(SlotStore.MAX_SIZE + 1), -1);
  // The case: a 16,385-octet answer took a 128 KiB slot.
  assert.equal(SlotStore.slotSize(CACHE_META + 2 + 16_385), 20_480);
});

test('property: any cache record takes at most 4/3 of its size in slab memory, plus one slab', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 12, max: 65535 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (wire, ttlShare) => {
        // Every record but the question takes at least 11 octets and adds a 2-byte offset.
        const ttls = Math.floor(ttlShare * Math.floor((wire - 12) / 11));
        const size = CACHE_META + 2 * ttls + wire;
        const store = new SlotStore();
        const count = Math.ceil((512 * 1024) / size);
        for (let i = 0; i < count; i++) assert.ok(store.allocate(size) >= 0);
        const slot = SlotStore.slotSize(size);
        assert.ok(3 * slot <= 4 * size, `record ${size} in slot ${slot}`);
        assert.ok(store.bytes >= count * (slot + OWNER));
        assert.ok(
          store.bytes <= count * (slot + OWNER) + 64 * 1024,
          `${count} × ${size}: ${store.bytes} bytes`,
        );
      },
    ),
    { numRuns: 300 },
  );
});

type Op = { kind: 'alloc'; size: number } | { kind: 'release'; pick: number };

test('property: records keep their bytes through any allocate/release sequence, within budget', () => {
  const size = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 24, max: 400 }) },
    { weight: 3, arbitrary: fc.integer({ min: 400, max: 20_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 20_000, max: SlotStore.MAX_SIZE }) },
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: size.map((s) => ({ kind: 'alloc' as const, size: s })) },
    { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'release' as const, pick })) },
  );
  fc.assert(
    fc.property(
      fc.array(op, { maxLength: 150 }),
      fc.constantFrom(Number.POSITIVE_INFINITY, 512 * 1024, 2 * 1024 * 1024),
      (ops, budget) => {
        const store = new SlotStore(budget);
        const live = new Map<number, Buffer>();
        let id = 0;
        for (const o of ops) {
          if (o.kind === 'alloc') {
            const before = store.bytes;
            const h = store.allocate(o.size);
            if (h < 0) {
              // A slab is at most 64 KiB, or one slot and its owner handle. A refusal may
              // have compacted other classes first, never grown the store.
              const slab = Math.max(64 * 1024, SlotStore.slotSize(o.size) + OWNER);
              assert.ok(store.bytes + slab > budget, 'refused only near the budget');
              assert.ok(store.bytes <= before);
              continue;
            }
            assert.ok(!live.has(h), 'a live handle is never handed out twice');
            const bytes = pattern(++id, o.size);
            write(store, h, bytes);
            live.set(h, bytes);
          } else if (live.size > 0) {
            const h = [...live.keys()][o.pick % live.size];
            store.release(h);
            live.delete(h);
          }
          assert.ok(store.bytes <= budget);
          let slots = 0;
          const classes = new Set<number>();
          for (const [h, bytes] of live) {
            assert.ok(read(store, h, bytes.length).equals(bytes), `handle ${h} kept its bytes`);
            slots += SlotStore.slotSize(bytes.length) + OWNER;
            classes.add(SlotStore.slotSize(bytes.length));
          }
          // Per class: the slabs its records need and at most one empty one.
          assert.ok(store.bytes >= slots);
          assert.ok(store.bytes <= slots + classes.size * 2 * (SlotStore.MAX_SIZE + OWNER));
        }
        for (const h of live.keys()) store.release(h);
        assert.equal(store.bytes, 0, 'every slab is freed once every record is');
      },
    ),
    { numRuns: 200 },
  );
});

test('property: within one class, releases in any order leave every other record intact', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(24, 100, 1000, 20_000, 40_000),
      fc
        .integer({ min: 2, max: 80 })
        .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.nat(), { minLength: n, maxLength: 2 * n }))),
      (size, [n, picks]) => {
        const store = new SlotStore();
        const live = new Map<number, Buffer>();
        let id = 0;
        const add = () => {
          const h = store.allocate(size);
          const bytes = pattern(++id, size);
          write(store, h, bytes);
          live.set(h, bytes);
        };
        for (let i = 0; i < n; i++) add();
        for (const [i, pick] of picks.entries()) {
          // Mostly releases, with an allocation now and then so that moved slots move again.
          if (i % 5 === 4) add();
          else if (live.size > 0) {
            const h = [...live.keys()][pick % live.size];
            store.release(h);
            live.delete(h);
          }
          for (const [h, bytes] of live) assert.ok(read(store, h, size).equals(bytes), `handle ${h}`);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('slots of different sizes never overlap, and each keeps what was written into it', () => {
  const store = new SlotStore();
  const sizes = [1, 100, 128, 129, 300, 1000, 5000, 20000, 40000, 70000, SlotStore.MAX_SIZE];
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

test('small slots share slabs: 10,000 records of 100 bytes take 112-byte slots in 20 slabs', () => {
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
  assert.equal(SlotStore.slotSize(100), 112);
  assert.equal(offsets.size, 20);
  const slab = [...offsets.keys()][0].length;
  assert.ok(slab <= 64 * 1024);
  assert.equal(store.bytes, 20 * slab, 'bytes counts whole slabs, owner handles included');
  assert.ok(store.bytes <= 10_000 * (112 + OWNER) + slab);
});

test('100 records of 16,385 bytes hold about 2 MiB, not the 12.5 MiB of 128 KiB slots', () => {
  const store = new SlotStore();
  for (let i = 0; i < 100; i++) assert.ok(store.allocate(16_385) >= 0);
  assert.ok(store.bytes <= 100 * (20_480 + OWNER), `${store.bytes} bytes`);
  assert.ok(store.bytes >= 100 * 16_385);
});

test("a released slot is the next record's of its class: steady churn moves nothing", () => {
  const store = new SlotStore();
  const handles = [1, 2, 3].map((id) => {
    const h = store.allocate(100);
    write(store, h, pattern(id, 100));
    return h;
  });
  const where = handles.map((h) => [store.bufferOf(h), store.offsetOf(h)] as const);
  const bytes = store.bytes;
  for (let i = 0; i < 1000; i++) {
    store.release(handles[0]);
    handles[0] = store.allocate(100);
    assert.equal(store.bufferOf(handles[0]), where[0][0]);
    assert.equal(store.offsetOf(handles[0]), where[0][1], 'the hole is reused');
  }
  for (const i of [1, 2]) {
    assert.equal(store.offsetOf(handles[i]), where[i][1], 'the others stayed where they were');
    assert.ok(read(store, handles[i], 100).equals(pattern(i + 1, 100)));
  }
  assert.equal(store.bytes, bytes);
});

test('more than a slab of holes: the top records move down, handles follow, empty slabs go', () => {
  for (const size of [100, 40_000]) {
    const store = new SlotStore();
    store.allocate(size);
    const slab = store.bytes;
    const perSlab = slab / (SlotStore.slotSize(size) + OWNER);
    // Three slabs full; then release two slabs' worth from the second record up.
    const handles = Array.from({ length: 3 * perSlab - 1 }, () => store.allocate(size));
    handles.unshift(0);
    handles.forEach((h, id) => {
      write(store, h, pattern(id, size));
    });
    assert.equal(store.bytes, 3 * slab);
    const kept = new Map(handles.map((h, id) => [h, id]));
    for (const h of handles.slice(1, 2 * perSlab + 1)) {
      store.release(h);
      kept.delete(h);
    }
    assert.equal(kept.size, perSlab);
    assert.ok(store.bytes <= 2 * slab, `size ${size}: a slab given back (${store.bytes / slab} slabs)`);
    for (const [h, id] of kept) assert.ok(read(store, h, size).equals(pattern(id, size)), `${size}: ${id}`);
    for (const h of kept.keys()) store.release(h);
    assert.equal(store.bytes, 0);
  }
});

test('a class at a slab boundary reuses its holes, and frees all its slabs when it empties', () => {
  const store = new SlotStore();
  const first = store.allocate(100);
  const slab = store.bytes;
  const perSlab = slab / (SlotStore.slotSize(100) + OWNER);
  const handles = [first];
  for (let i = 1; i < perSlab; i++) handles.push(store.allocate(100));
  assert.equal(store.bytes, slab, 'one full slab');
  const extra = store.allocate(100);
  const second = store.bufferOf(extra);
  assert.equal(store.bytes, 2 * slab);
  store.release(extra);
  assert.equal(store.bytes, 2 * slab, 'one hole does not free its slab');
  const again = store.allocate(100);
  assert.equal(store.bufferOf(again), second, 'and the hole is reused, nothing allocated');
  for (let i = 0; i < 2 * perSlab - 1; i++) handles.push(store.allocate(100));
  handles.push(again);
  assert.equal(store.bytes, 3 * slab);
  while (handles.length > perSlab) store.release(handles.pop()!);
  assert.ok(store.bytes <= 2 * slab, 'two slabs emptied: at least one is freed');
  while (handles.length > 0) store.release(handles.pop()!);
  assert.equal(store.bytes, 0, 'the class emptied: all its slabs are freed');
});

test('at the budget, allocate compacts a class holding a slab more than it needs before refusing', () => {
  const probe = new SlotStore();
  probe.allocate(100);
  const small = probe.bytes;
  probe.allocate(1000);
  const large = probe.bytes - small;
  const store = new SlotStore(2 * small + large - 1);
  const perSlab = small / (SlotStore.slotSize(100) + OWNER);
  const handles = Array.from({ length: perSlab + 1 }, (_, id) => {
    const h = store.allocate(100);
    write(store, h, pattern(id, 100));
    return h;
  });
  store.release(handles[0]);
  assert.equal(store.bytes, 2 * small, 'one slab is enough, but a hole keeps two');
  const h = store.allocate(1000);
  assert.ok(h >= 0, 'compacting the small class made room');
  assert.equal(store.bytes, small + large);
  for (const [id, moved] of handles.entries()) {
    if (id > 0) assert.ok(read(store, moved, 100).equals(pattern(id, 100)), `record ${id} moved intact`);
  }
  assert.equal(store.allocate(60_000), -1, 'nothing left to compact: records must go');
  assert.equal(store.bytes, small + large);
  store.release(h);
  assert.equal(store.bytes, small);
  assert.ok(store.allocate(60_000) >= 0, 'and once they have, it fits');
});

test('a record larger than the largest slot, or whose slab exceeds maxBytes, is refused', () => {
  const store = new SlotStore();
  assert.equal(store.canHold(SlotStore.MAX_SIZE + 1), false);
  assert.equal(store.allocate(SlotStore.MAX_SIZE + 1), -1);
  assert.ok(store.allocate(SlotStore.MAX_SIZE) >= 0);
  const bounded = new SlotStore(64 * 1024);
  assert.equal(bounded.canHold(65_000), false, 'its slot alone is past the budget');
  assert.equal(bounded.allocate(65_000), -1);
  assert.equal(bounded.bytes, 0);
  assert.ok(bounded.canHold(100));
  assert.ok(bounded.allocate(100) >= 0);
});
