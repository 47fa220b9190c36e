// Fixed-size slots carved from large buffers, named by a small integer: the answer
// cache keeps its entries here so that a cached entry costs no JavaScript object.

/**
 * Slot sizes in bytes. An entry takes the smallest class it fits, so at most half of a
 * slot is unused; the largest holds a 64 KiB message with its metadata.
 */
const CLASS_SIZES = [128, 256, 512, 1024, 2048, 4096, 16384, 131072] as const;
/** Bytes per slab (or one slot, for classes larger than this). */
const SLAB_BYTES = 64 * 1024;
/** Handles keep the class in their low bits. */
const CLASS_BITS = 3;
const CLASS_MASK = (1 << CLASS_BITS) - 1;

class SizeClass {
  readonly perSlab: number;
  /** log2 of perSlab and of size (all powers of two), so handle arithmetic is shifts. */
  readonly slabShift: number;
  readonly sizeShift: number;
  readonly slotMask: number;
  readonly slabs: Buffer[] = [];
  /** Slots handed out at least once; slots below this are in use or on `free`. */
  used = 0;
  /** Released slot numbers, reused before new ones. */
  free: number[] = [];
  /** Slots in use. */
  live = 0;

  constructor(readonly size: number) {
    this.perSlab = Math.max(1, Math.floor(SLAB_BYTES / size));
    this.slabShift = Math.log2(this.perSlab);
    this.sizeShift = Math.log2(size);
    this.slotMask = this.perSlab - 1;
  }
}

/**
 * Storage for variable-length records without an object per record. A handle is
 * `slot << CLASS_BITS | class`, a small integer (a V8 Smi for any realistic count), so a
 * Map from key to handle holds nothing the garbage collector must trace or free.
 *
 * Bound: the bytes in use are at most twice what the stored records need. A class keeps
 * its slabs (the most it ever had live) until its last slot is released, then drops them
 * all, so memory taken by a burst of large answers comes back once LRU has evicted them.
 */
export class SlotStore {
  private readonly classes = CLASS_SIZES.map((size) => new SizeClass(size));

  /** Largest record a slot can hold. */
  static readonly MAX_SIZE = CLASS_SIZES[CLASS_SIZES.length - 1];

  /** A handle for a slot of at least `size` bytes (contents unspecified), or -1 if too large. */
  allocate(size: number): number {
    let c = 0;
    while (c < CLASS_SIZES.length && CLASS_SIZES[c] < size) c++;
    if (c === CLASS_SIZES.length) return -1;
    const cls = this.classes[c];
    let slot = cls.free.pop();
    if (slot === undefined) {
      slot = cls.used++;
      if ((slot & cls.slotMask) === 0) cls.slabs.push(Buffer.allocUnsafeSlow(cls.perSlab * cls.size));
    }
    cls.live++;
    return (slot << CLASS_BITS) | c;
  }

  release(handle: number): void {
    const cls = this.classes[handle & CLASS_MASK];
    if (--cls.live === 0) {
      cls.slabs.length = 0;
      cls.free = [];
      cls.used = 0;
      return;
    }
    cls.free.push(handle >>> CLASS_BITS);
  }

  /** The buffer holding the slot; read and write it from `offsetOf(handle)`. */
  bufferOf(handle: number): Buffer {
    const cls = this.classes[handle & CLASS_MASK];
    return cls.slabs[(handle >>> CLASS_BITS) >>> cls.slabShift];
  }

  offsetOf(handle: number): number {
    const cls = this.classes[handle & CLASS_MASK];
    return ((handle >>> CLASS_BITS) & cls.slotMask) << cls.sizeShift;
  }

  /** Bytes of slab memory held. */
  get bytes(): number {
    let total = 0;
    for (const cls of this.classes) total += cls.slabs.length * cls.perSlab * cls.size;
    return total;
  }
}
