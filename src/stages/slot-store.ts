// Records kept in slots carved from large buffers and named by a small integer: the answer
// cache keeps its entries here so that a cached entry costs no JavaScript object, and so
// that the memory it holds can be counted exactly and bounded.

/** Smallest slot. Records of at least 3/4 of it (24 bytes) waste at most a quarter. */
const MIN_SLOT = 32;
/**
 * Largest slot: a 65,535-octet message with the cache's 28 bytes of metadata and a 2-byte
 * offset per record (every record but the question takes at least 11 octets, so there are
 * at most 5,956) needs at most 77,475 bytes.
 */
const MAX_SLOT = 81920;
/** Target size of a slab; classes with slots larger than half of it get one slab per slot. */
const SLAB_BYTES = 64 * 1024;
/** Each slab ends with the handle of every slot (-1: free), so records can be moved. */
const OWNER_BYTES = 4;
/**
 * Handles' locations keep the class in their low bits (46 classes), so a class holds at
 * most 2^25 records (the cache's max_entries is at most 10^7).
 */
const CLASS_BITS = 6;
const CLASS_MASK = (1 << CLASS_BITS) - 1;

/**
 * Slot sizes: 32, then four steps per power of two (5/4, 6/4, 7/4 and 8/4 of it), up to
 * MAX_SLOT. A record larger than 2^k takes a slot of at most 2^k + 2^(k-2) rounded up to a
 * step of 2^(k-2), so the unused tail is less than a step, which is less than a quarter of
 * the slot. (Powers of two alone waste up to half; with one class for 16 KiB..128 KiB, a
 * 16,385-octet answer took a 128 KiB slot.) All sizes are multiples of 8.
 */
const CLASS_SIZES: readonly number[] = (() => {
  const sizes = [MIN_SLOT];
  for (let base = MIN_SLOT; sizes[sizes.length - 1] < MAX_SLOT; base *= 2) {
    for (let q = 5; q <= 8 && sizes[sizes.length - 1] < MAX_SLOT; q++) sizes.push((base / 4) * q);
  }
  return sizes;
})();

/** Class index by ceil(size / 8): one table read instead of a search on every store. */
const CLASS_OF = (() => {
  const table = new Uint8Array(MAX_SLOT / 8 + 1);
  let c = 0;
  for (let i = 0; i < table.length; i++) {
    while (CLASS_SIZES[c] < i * 8) c++;
    table[i] = c;
  }
  return table;
})();

class SizeClass {
  /** Slots per slab, a power of two so that slot → (slab, index) is a shift and a mask. */
  readonly perSlab: number;
  readonly slabShift: number;
  readonly slotMask: number;
  /** Where the owner handles start in each slab (after perSlab slots). */
  readonly ownersAt: number;
  /** Length of each slab: slots plus owner handles. */
  readonly slabBytes: number;
  /** Exactly the slabs that slots 0 .. used-1 lie in. */
  readonly slabs: Buffer[] = [];
  /** Per slab, a view of its owner handles. */
  readonly owners: Int32Array[] = [];
  /** Slots handed out since the class was last emptied or compacted: live, or holes. */
  used = 0;
  /** Slots in use. */
  live = 0;
  /** Released slots below `used`, reused first. Bound: perSlab, then the class is compacted. */
  readonly holes: number[] = [];

  constructor(readonly size: number) {
    let perSlab = 1;
    while (2 * perSlab * (size + OWNER_BYTES) <= SLAB_BYTES) perSlab *= 2;
    this.perSlab = perSlab;
    this.slabShift = Math.log2(perSlab);
    this.slotMask = perSlab - 1;
    this.ownersAt = perSlab * size;
    this.slabBytes = perSlab * (size + OWNER_BYTES);
  }

  /** The slabs the live records need; compaction gives back the rest. */
  get needed(): number {
    return (this.live + this.slotMask) >>> this.slabShift;
  }

  ownerOf(slot: number): number {
    return this.owners[slot >>> this.slabShift][slot & this.slotMask];
  }

  setOwner(slot: number, handle: number): void {
    this.owners[slot >>> this.slabShift][slot & this.slotMask] = handle;
  }

  addSlab(): void {
    const slab = Buffer.allocUnsafeSlow(this.slabBytes);
    this.slabs.push(slab);
    this.owners.push(new Int32Array(slab.buffer, slab.byteOffset + this.ownersAt, this.perSlab));
  }

  /** Keep the first `count` slabs. */
  truncate(count: number): void {
    this.slabs.length = count;
    this.owners.length = count;
  }
}

/**
 * Storage for variable-length records without an object per record. A handle is a small
 * integer (a V8 Smi) that stays valid until released, so a Map from key to handle holds
 * nothing the garbage collector must trace or free. Records move (their handles follow):
 * ask `bufferOf` and `offsetOf` again after any `release` or `allocate`.
 *
 * Memory: `bytes` counts every slab buffer the store holds (slots, free or not, and their
 * 4-byte owner handles): the memory it really took, not the records' length. A record
 * takes the smallest slot class it fits, which leaves at most a quarter of the slot unused
 * for any record of 24 bytes or more. A released slot is a hole that the class's next
 * record reuses (so steady churn moves nothing); once a class has more than a slab's worth
 * of holes, its topmost records move into the holes and the slabs left empty are freed. So
 * a class holds the slabs its live records need plus at most one, and nothing once its last
 * record goes. Besides the slabs the store keeps 4 bytes per handle ever live at once (the
 * location table) and a free list of handles, both bounded by the most records held at once.
 *
 * Bound: `maxBytes`. `allocate` compacts classes that hold a slab more than they need
 * when a new slab would not fit, and refuses (-1) when it still would not: the owner then
 * releases records (the cache evicts least recently used ones) and asks again. `canHold`
 * tells up front whether a record can ever be stored.
 */
export class SlotStore {
  private readonly classes = CLASS_SIZES.map((size) => new SizeClass(size));
  /** Handle → slot << CLASS_BITS | class. Grows by doubling. */
  private where = new Int32Array(1024);
  private nextHandle = 0;
  private readonly freeHandles: number[] = [];
  private held = 0;
  /** Bytes of slabs beyond what live records need, in all classes: what compaction frees. */
  private reclaimable = 0;

  /** Largest record a slot can hold. */
  static readonly MAX_SIZE = MAX_SLOT;
  /** Every slot size, smallest first. */
  static readonly CLASS_SIZES = CLASS_SIZES;

  constructor(readonly maxBytes = Number.POSITIVE_INFINITY) {}

  /** Size of the slot a record of `size` bytes takes; -1 if larger than MAX_SIZE. */
  static slotSize(size: number): number {
    return size > MAX_SLOT ? -1 : CLASS_SIZES[CLASS_OF[(size + 7) >>> 3]];
  }

  /** Bytes of slab memory held (see the class comment). */
  get bytes(): number {
    return this.held;
  }

  /** Whether a record of `size` bytes can be stored at all: its slab alone fits maxBytes. */
  canHold(size: number): boolean {
    return size <= MAX_SLOT && this.classes[CLASS_OF[(size + 7) >>> 3]].slabBytes <= this.maxBytes;
  }

  /** Whether a new slab of `cls` fits within maxBytes, once the other classes are compacted. */
  private makeRoom(cls: SizeClass): boolean {
    if (this.held + cls.slabBytes <= this.maxBytes) return true;
    if (this.reclaimable === 0) return false;
    // Only classes with holes hold slabs they do not need: never `cls`, which has none.
    for (let c = 0; c < this.classes.length; c++) {
      const other = this.classes[c];
      if (other.slabs.length > other.needed) this.compact(other, c);
    }
    return this.held + cls.slabBytes <= this.maxBytes;
  }

  /**
   * A handle for a slot of at least `size` bytes (contents unspecified), or -1 if it is
   * larger than MAX_SIZE or would take `bytes` past maxBytes even after compacting the
   * classes that hold a slab more than they need: then records must be released first.
   */
  allocate(size: number): number {
    if (size > MAX_SLOT) return -1;
    const c = CLASS_OF[(size + 7) >>> 3];
    const cls = this.classes[c];
    let slot = cls.holes.pop();
    if (slot !== undefined) {
      // Filling a hole: one more slab is needed if the count crossed a slab boundary.
      if ((cls.live & cls.slotMask) === 0) this.reclaimable -= cls.slabBytes;
    } else {
      slot = cls.used;
      if ((slot & cls.slotMask) === 0) {
        if (!this.makeRoom(cls)) return -1;
        cls.addSlab();
        this.held += cls.slabBytes;
      }
      cls.used = slot + 1;
    }
    cls.live++;
    let handle = this.freeHandles.pop();
    if (handle === undefined) {
      handle = this.nextHandle++;
      if (handle === this.where.length) {
        const grown = new Int32Array(2 * handle);
        grown.set(this.where);
        this.where = grown;
      }
    }
    this.where[handle] = (slot << CLASS_BITS) | c;
    cls.setOwner(slot, handle);
    return handle;
  }

  release(handle: number): void {
    const location = this.where[handle];
    const c = location & CLASS_MASK;
    const cls = this.classes[c];
    const slot = location >>> CLASS_BITS;
    this.freeHandles.push(handle);
    const live = --cls.live;
    if (live === 0) {
      // The class emptied: all its slabs go.
      const bytes = cls.slabs.length * cls.slabBytes;
      this.held -= bytes;
      this.reclaimable -= bytes - cls.slabBytes;
      cls.truncate(0);
      cls.holes.length = 0;
      cls.used = 0;
      return;
    }
    cls.setOwner(slot, -1);
    cls.holes.push(slot);
    if ((live & cls.slotMask) === 0) this.reclaimable += cls.slabBytes;
    if (cls.holes.length > cls.perSlab) this.compact(cls, c);
  }

  /** Move the topmost records into the holes below them, then free the slabs left empty. */
  private compact(cls: SizeClass, c: number): void {
    const target = cls.live;
    const slabs = cls.slabs;
    let top = cls.used;
    for (const hole of cls.holes) {
      if (hole >= target) continue;
      let mover: number;
      do mover = cls.ownerOf(--top);
      while (mover < 0);
      if (cls.perSlab === 1) {
        // A slab per slot: swap the buffers (the owner handle goes along) rather than copy.
        const from = slabs[top];
        slabs[top] = slabs[hole];
        slabs[hole] = from;
        const owners = cls.owners[top];
        cls.owners[top] = cls.owners[hole];
        cls.owners[hole] = owners;
      } else {
        const from = slabs[top >>> cls.slabShift];
        const fromAt = (top & cls.slotMask) * cls.size;
        from.copy(slabs[hole >>> cls.slabShift], (hole & cls.slotMask) * cls.size, fromAt, fromAt + cls.size);
        cls.setOwner(hole, mover);
      }
      this.where[mover] = (hole << CLASS_BITS) | c;
    }
    cls.used = target;
    cls.holes.length = 0;
    const keep = cls.needed;
    const extra = slabs.length - keep;
    cls.truncate(keep);
    this.held -= extra * cls.slabBytes;
    this.reclaimable -= extra * cls.slabBytes;
  }

  /** The buffer holding the slot; read and write it from `offsetOf(handle)`. */
  bufferOf(handle: number): Buffer {
    const location = this.where[handle];
    const cls = this.classes[location & CLASS_MASK];
    return cls.slabs[(location >>> CLASS_BITS) >>> cls.slabShift];
  }

  offsetOf(handle: number): number {
    const location = this.where[handle];
    const cls = this.classes[location & CLASS_MASK];
    return ((location >>> CLASS_BITS) & cls.slotMask) * cls.size;
  }
}
