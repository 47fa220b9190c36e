// The compact name set behind every list: names in one byte arena, an open-addressing hash
// table over them, and per-name typed arrays for the action and the source line. No JS object
// or string is kept per name, which is what lets a million names fit in tens of megabytes.
import { ListError } from './errors.js';
import {
  ACTION_LOCAL,
  ACTION_NAMES,
  ACTION_NONE,
  type ActionCode,
  type EntryKind,
  type ListAction,
  type LocalRecord,
} from './types.js';

// FNV-1a over the name's bytes read right to left, so the hash of every suffix of a query name
// falls out of one pass over it; murmur3's finaliser then spreads the bits for the table index.
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

function fmix(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return x ^ (x >>> 16);
}

/** Slots per name: the table is at most this full, so a probe sequence stays short. */
const MAX_LOAD = 0.7;

/** Marks an action byte that came from a `subtree` entry (the name and everything under it). */
const SUBTREE_BIT = 0x40;
const ACTION_MASK = 0x3f;

/** Names of at most 127 labels: a query walks at most this many suffixes. */
const MAX_LABELS = 128;

// Scratch for one lookup; lookups are synchronous, so one pair serves every set.
const probeStarts = new Int32Array(MAX_LABELS);
const probeHashes = new Int32Array(MAX_LABELS);

// Each record in the arena: its header, then the name's bytes. Keeping the length, both
// actions and the line beside the name means a hit reads two cache lines (table slot, record)
// instead of one per array (measured: a hit took about half the CPU time of parallel arrays).
const H_LENGTH = 0;
const H_EXACT = 1;
const H_WILD = 2;
/** Line number, 32 bits little-endian. */
const H_LINE = 3;
const HEADER = 7;
/** Offset 0 holds no record, so 0 can mean an empty table slot; slot 1 is the top-level `*`. */
const ROOT_SLOT = 1;

/** A slot is `2 * record offset + 0` for the name itself, `+ 1` for the names under it. */
export type Slot = number;

/** The arrays a finished set is made of; what a build worker sends back (the arrays'
 *  buffers transferred, the maps cloned). */
export interface NameSetParts {
  /** Records: header (HEADER bytes) then name, one after the other. */
  readonly arena: Uint8Array;
  /** Pairs (hash, record offset); offset 0 marks an empty slot. */
  readonly table: Int32Array;
  /** Slots whose line is not their record's (a name listed twice, once exactly and once as
   *  `*.name`); few, so a map. */
  readonly otherLines: ReadonlyMap<Slot, number>;
  /** The records of every slot whose action is local (RPZ local data); few, so a map. */
  readonly locals: ReadonlyMap<Slot, readonly LocalRecord[]>;
  readonly names: number;
  readonly exactMin: number;
  readonly exactMax: number;
  readonly wildMin: number;
  readonly wildMax: number;
  /** `*` at the top of an RPZ zone: every name (but the root) matches. */
  readonly rootAction: number;
  readonly rootLine: number;
}

/**
 * An immutable set of names with, per name, an entry for the name itself and one for the names
 * under it (a `subtree` entry fills both). Lookup walks the query's suffixes on label
 * boundaries: the name itself is matched by its exact entry, a proper suffix by its under-it
 * entry, and the longest such suffix wins (then a top-level `*`). It hashes the whole name
 * once and probes the table once per label, whatever the size of the set.
 *
 * Bound: holds exactly the names it was built from; building rejects more than
 * {@link MAX_NAMES} or an arena over {@link MAX_ARENA} bytes.
 */
export class NameSet {
  static readonly EMPTY: NameSet = new NameSet({
    arena: new Uint8Array(HEADER),
    table: new Int32Array(2),
    otherLines: new Map(),
    locals: new Map(),
    names: 0,
    exactMin: 1,
    exactMax: 0,
    wildMin: 1,
    wildMax: 0,
    rootAction: ACTION_NONE,
    rootLine: 0,
  });

  /** Distinct names held (a top-level `*` counts as one). */
  readonly size: number;
  private readonly p: NameSetParts;
  private readonly arena: Uint8Array;
  private readonly table: Int32Array;
  private readonly capacity: number;

  constructor(parts: NameSetParts) {
    this.p = parts;
    this.arena = parts.arena;
    this.table = parts.table;
    this.capacity = parts.table.length >>> 1;
    this.size = parts.names + (parts.rootAction !== ACTION_NONE ? 1 : 0);
  }

  /** The set's parts, and the buffers to transfer rather than copy when posting them. */
  transferable(): { parts: NameSetParts; transfer: ArrayBuffer[] } {
    const buffers = new Set<ArrayBuffer>([
      this.arena.buffer as ArrayBuffer,
      this.table.buffer as ArrayBuffer,
    ]);
    return { parts: this.p, transfer: [...buffers] };
  }

  /** Bytes held by the set's arrays (the maps of local data aside). */
  get byteLength(): number {
    return this.arena.byteLength + this.table.byteLength;
  }

  /**
   * The slot of the entry `name` matches, or -1. Case-insensitive; a trailing dot is ignored.
   * `name` is in presentation form as the wire peek writes it: a `\.` is a dot inside a label,
   * never a boundary, and no suffix holding a `\` can match (listed names have none).
   */
  lookup(name: string): Slot {
    const p = this.p;
    let end = name.length;
    if (end > 0 && name.charCodeAt(end - 1) === 0x2e) end--;
    if (p.names === 0) return p.rootAction !== ACTION_NONE && end > 0 ? ROOT_SLOT : -1;
    const wildMin = p.wildMin;
    const wildMax = p.wildMax;
    let h = FNV_OFFSET;
    let n = 0;
    let whole = true;
    for (let i = end - 1; i >= 0; i--) {
      let c = name.charCodeAt(i);
      if (c === 0x2e) {
        if (i > 0 && name.charCodeAt(i - 1) === 0x5c) {
          let backslashes = 1;
          while (i - 1 - backslashes >= 0 && name.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
          // An odd run escapes this dot: it is inside a label, and every longer suffix holds a `\`.
          if ((backslashes & 1) === 1) {
            whole = false;
            break;
          }
        }
        const length = end - i - 1;
        if (length >= wildMin && length <= wildMax && n < MAX_LABELS) {
          probeStarts[n] = i + 1;
          probeHashes[n] = h;
          n++;
        }
      } else if (c === 0x5c) {
        whole = false;
        break;
      } else if (c >= 0x41 && c <= 0x5a) {
        c |= 0x20;
      }
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    const arena = this.arena;
    if (whole && end >= p.exactMin && end <= p.exactMax) {
      const o = this.find(name, 0, end, fmix(h));
      if (o > 0 && arena[o + H_EXACT] !== ACTION_NONE) return 2 * o;
    }
    // Recorded right to left, so the last one is the longest suffix: the most specific entry.
    for (let j = n - 1; j >= 0; j--) {
      const o = this.find(name, probeStarts[j], end, fmix(probeHashes[j]));
      if (o > 0 && arena[o + H_WILD] !== ACTION_NONE) return 2 * o + 1;
    }
    return p.rootAction !== ACTION_NONE && end > 0 ? ROOT_SLOT : -1;
  }

  /** The offset of the record whose name equals name[start, end) (ASCII case folded), or 0. */
  private find(name: string, start: number, end: number, hash: number): number {
    const table = this.table;
    const arena = this.arena;
    const capacity = this.capacity;
    const length = end - start;
    let index = Math.floor(((hash >>> 0) * capacity) / 4294967296);
    for (;;) {
      const o = table[2 * index + 1];
      if (o === 0) return 0;
      if (table[2 * index] === hash && arena[o] === length) {
        const at = o + HEADER - start;
        let t = start;
        for (; t < end; t++) {
          let c = name.charCodeAt(t);
          if (c >= 0x41 && c <= 0x5a) c |= 0x20;
          if (arena[at + t] !== c) break;
        }
        if (t === end) return o;
      }
      if (++index === capacity) index = 0;
    }
  }

  private rawAction(slot: Slot): number {
    if (slot === ROOT_SLOT) return this.p.rootAction;
    return this.arena[Math.floor(slot / 2) + ((slot & 1) === 0 ? H_EXACT : H_WILD)];
  }

  actionCode(slot: Slot): ActionCode {
    return (this.rawAction(slot) & ACTION_MASK) as ActionCode;
  }

  action(slot: Slot): ListAction {
    return ACTION_NAMES[this.rawAction(slot) & ACTION_MASK];
  }

  kind(slot: Slot): EntryKind {
    if ((this.rawAction(slot) & SUBTREE_BIT) !== 0) return 'subtree';
    return (slot & 1) === 0 ? 'exact' : 'wildcard';
  }

  line(slot: Slot): number {
    if (slot === ROOT_SLOT) return this.p.rootLine;
    return this.p.otherLines.get(slot) ?? readLine(this.arena, Math.floor(slot / 2));
  }

  /** The name of the slot's record, lowercase, without a trailing dot. */
  name(slot: Slot): string {
    if (slot === ROOT_SLOT) return '';
    const o = Math.floor(slot / 2);
    const a = this.arena;
    return Buffer.from(a.buffer, a.byteOffset + o + HEADER, a[o + H_LENGTH]).toString('latin1');
  }

  /** The entry as listed: `name`, or `*.name` for an entry covering only the names under it. */
  entry(slot: Slot): string {
    const name = this.name(slot);
    if (this.kind(slot) !== 'wildcard') return name;
    return name === '' ? '*' : `*.${name}`;
  }

  local(slot: Slot): readonly LocalRecord[] | null {
    return this.p.locals.get(slot) ?? null;
  }
}

function readLine(arena: Uint8Array, o: number): number {
  const at = o + H_LINE;
  return (arena[at] | (arena[at + 1] << 8) | (arena[at + 2] << 16)) + arena[at + 3] * 0x1000000;
}

/** Most names one set may hold. */
export const MAX_NAMES = 100_000_000;
/** Largest arena: slots (2 * offset + 1) stay exact integers well inside int32 arithmetic. */
export const MAX_ARENA = 0x3fffffff;

/** Receives names that could not be merged with an earlier entry of the same name. */
export type ConflictReporter = (line: number, reason: string) => void;

/**
 * Collects names into the arena (no object per name), then builds the table in
 * {@link finish}. Duplicates are resolved at the end, in input order: the first entry for a
 * slot wins, local records of one name accumulate, and an entry that contradicts an earlier one
 * (`CNAME .` and `A` for one RPZ owner) is reported and dropped.
 */
export class NameSetBuilder {
  private arena: Uint8Array;
  private used = HEADER;
  /** Per record, during the build only: where it starts, and its hash. */
  private offsets: Uint32Array;
  private hashes: Int32Array;
  private count = 0;
  /** The record carried by each local-data entry, by record offset, until finish. */
  private readonly pendingLocals = new Map<number, LocalRecord>();
  private rootAction: number = ACTION_NONE;
  private rootLine = 0;
  private readonly rootLocals: LocalRecord[] = [];
  /** Entries equal to an earlier one (same name, slot and action): normal in feeds, not reported. */
  duplicates = 0;

  /** `records` and `bytes` are estimates (one entry per line, names no longer than the
   *  input); the arrays grow past them if needed. */
  constructor(records: number, bytes: number) {
    const r = Math.max(16, Math.min(records, MAX_NAMES));
    this.arena = new Uint8Array(Math.min(MAX_ARENA, Math.max(64, bytes + r * HEADER)));
    this.offsets = new Uint32Array(r);
    this.hashes = new Int32Array(r);
  }

  get records(): number {
    return this.count;
  }

  /** `name` is normalized (names.ts); "" only with `wildcard` (a top-level `*`). */
  add(name: string, kind: EntryKind, action: ActionCode, line: number, conflict: ConflictReporter): void {
    if (name === '') this.addRoot(action, line, null, conflict);
    else this.append(name, kind, action, line);
  }

  addLocal(
    name: string,
    kind: EntryKind,
    record: LocalRecord,
    line: number,
    conflict: ConflictReporter,
  ): void {
    if (name === '') {
      this.addRoot(ACTION_LOCAL, line, record, conflict);
      return;
    }
    this.pendingLocals.set(this.used, record);
    this.append(name, kind, ACTION_LOCAL, line);
  }

  private addRoot(
    action: number,
    line: number,
    record: LocalRecord | null,
    conflict: ConflictReporter,
  ): void {
    if (this.rootAction === ACTION_NONE) {
      this.rootAction = action;
      this.rootLine = line;
      if (record !== null) this.rootLocals.push(record);
    } else if (record !== null && this.rootAction === ACTION_LOCAL) {
      const problem = localConflict(this.rootLocals, record);
      if (problem === null) this.rootLocals.push(record);
      else conflict(line, `${problem} (line ${this.rootLine})`);
    } else if (this.rootAction === action) {
      this.duplicates++;
    } else {
      conflict(line, `conflicts with line ${this.rootLine} for the same name`);
    }
  }

  private append(name: string, kind: EntryKind, action: number, line: number): void {
    const i = this.count;
    if (i >= MAX_NAMES)
      throw new ListError('LIST_TOO_MANY_NAMES', `more than ${MAX_NAMES} names in one source`);
    if (i === this.hashes.length) this.growRecords();
    const length = name.length;
    const o = this.used;
    const need = o + HEADER + length;
    if (need > this.arena.length) {
      if (need > MAX_ARENA)
        throw new ListError('LIST_TOO_MANY_NAMES', `more than ${MAX_ARENA} bytes of names in one source`);
      const bigger = new Uint8Array(Math.min(MAX_ARENA, Math.max(this.arena.length * 2, need)));
      bigger.set(this.arena.subarray(0, o));
      this.arena = bigger;
    }
    const arena = this.arena;
    const at = o + HEADER;
    let h = FNV_OFFSET;
    for (let t = length - 1; t >= 0; t--) {
      const c = name.charCodeAt(t);
      arena[at + t] = c;
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    const subtree = kind === 'subtree' ? SUBTREE_BIT : 0;
    arena[o + H_LENGTH] = length;
    arena[o + H_EXACT] = kind === 'wildcard' ? ACTION_NONE : action | subtree;
    arena[o + H_WILD] = kind === 'exact' ? ACTION_NONE : action | subtree;
    arena[o + H_LINE] = line & 0xff;
    arena[o + H_LINE + 1] = (line >>> 8) & 0xff;
    arena[o + H_LINE + 2] = (line >>> 16) & 0xff;
    arena[o + H_LINE + 3] = (line >>> 24) & 0xff;
    this.used = need;
    this.offsets[i] = o;
    this.hashes[i] = fmix(h);
    this.count = i + 1;
  }

  private growRecords(): void {
    const r = Math.min(this.hashes.length * 2, MAX_NAMES);
    const offsets = new Uint32Array(r);
    offsets.set(this.offsets);
    this.offsets = offsets;
    const hashes = new Int32Array(r);
    hashes.set(this.hashes);
    this.hashes = hashes;
  }

  /**
   * Builds the table and trims the arena; a generator that yields every few thousand names
   * (and between slices of the copy), so a caller can spread a large build over many turns of
   * the event loop. The builder must not be used afterwards.
   */
  *finish(conflict: ConflictReporter): Generator<void, NameSet, void> {
    const count = this.count;
    const capacity = Math.max(2, Math.ceil(count / MAX_LOAD));
    const table = new Int32Array(2 * capacity);
    const { offsets, hashes, pendingLocals } = this;
    const arena = this.arena;
    const otherLines = new Map<Slot, number>();
    const locals = new Map<Slot, LocalRecord[]>();
    let names = 0;
    let exactMin = Number.MAX_SAFE_INTEGER;
    let exactMax = 0;
    let wildMin = Number.MAX_SAFE_INTEGER;
    let wildMax = 0;

    const lineOf = (slot: Slot): number => otherLines.get(slot) ?? readLine(arena, Math.floor(slot / 2));
    const widen = (half: number, length: number): void => {
      if (half === 0) {
        if (length < exactMin) exactMin = length;
        if (length > exactMax) exactMax = length;
      } else {
        if (length < wildMin) wildMin = length;
        if (length > wildMax) wildMax = length;
      }
    };

    // Moves the entries of the record at `from` into the earlier record at `into` (same name).
    const merge = (into: number, from: number): void => {
      let repeated = false;
      for (let half = 0; half < 2; half++) {
        const field = half === 0 ? H_EXACT : H_WILD;
        const incoming = arena[from + field];
        if (incoming === ACTION_NONE) continue;
        const slot = 2 * into + half;
        const existing = arena[into + field];
        if (existing === ACTION_NONE) {
          arena[into + field] = incoming;
          widen(half, arena[into]);
          const line = readLine(arena, from);
          if (line !== readLine(arena, into)) otherLines.set(slot, line);
          if ((incoming & ACTION_MASK) === ACTION_LOCAL) locals.set(slot, [pendingLocals.get(from)!]);
        } else if ((existing & ACTION_MASK) === ACTION_LOCAL && (incoming & ACTION_MASK) === ACTION_LOCAL) {
          const records = locals.get(slot)!;
          const record = pendingLocals.get(from)!;
          const problem = localConflict(records, record);
          if (problem === null) records.push(record);
          else conflict(readLine(arena, from), `${problem} (line ${lineOf(slot)})`);
        } else if ((existing & ACTION_MASK) === (incoming & ACTION_MASK)) {
          repeated = true;
        } else {
          conflict(readLine(arena, from), `conflicts with line ${lineOf(slot)} for the same name`);
        }
      }
      if (repeated) this.duplicates++;
      arena[from + H_EXACT] = ACTION_NONE;
      arena[from + H_WILD] = ACTION_NONE;
    };

    for (let i = 0; i < count; i++) {
      if ((i & 4095) === 4095) yield;
      const hash = hashes[i];
      const o = offsets[i];
      const length = arena[o];
      let index = Math.floor(((hash >>> 0) * capacity) / 4294967296);
      for (;;) {
        const other = table[2 * index + 1];
        if (other === 0) {
          table[2 * index] = hash;
          table[2 * index + 1] = o;
          names++;
          for (let half = 0; half < 2; half++) {
            const action = arena[o + (half === 0 ? H_EXACT : H_WILD)];
            if (action === ACTION_NONE) continue;
            widen(half, length);
            if ((action & ACTION_MASK) === ACTION_LOCAL) locals.set(2 * o + half, [pendingLocals.get(o)!]);
          }
          break;
        }
        if (table[2 * index] === hash && arena[other] === length) {
          let t = HEADER;
          while (t < HEADER + length && arena[other + t] === arena[o + t]) t++;
          if (t === HEADER + length) {
            merge(other, o);
            break;
          }
        }
        if (++index === capacity) index = 0;
      }
    }
    pendingLocals.clear();
    if (this.rootAction === ACTION_LOCAL) locals.set(ROOT_SLOT, this.rootLocals);

    return new NameSet({
      arena: yield* trimmed(arena, this.used),
      table,
      otherLines,
      locals,
      names,
      exactMin,
      exactMax,
      wildMin,
      wildMax,
      rootAction: this.rootAction,
      rootLine: this.rootLine,
    });
  }
}

/** Bytes copied between yields when trimming (a fraction of a millisecond of copying). */
const COPY_SLICE = 1 << 20;

/** `a` cut to `length` bytes: a view when little would be saved, else a copy made in slices
 *  (one large copy would hold the event loop for milliseconds). */
function* trimmed(a: Uint8Array, length: number): Generator<void, Uint8Array, void> {
  if (a.length - length <= a.length / 8) return a.subarray(0, length);
  const b = new Uint8Array(length);
  for (let start = 0; start < length; start += COPY_SLICE) {
    b.set(a.subarray(start, Math.min(length, start + COPY_SLICE)), start);
    yield;
  }
  return b;
}

/** Why `record` cannot join the local records already held for a name, or null. A CNAME
 *  stands alone (RFC 1034 3.6.2): with it, a name has no other data. */
function localConflict(records: readonly LocalRecord[], record: LocalRecord): string | null {
  if (record.type === 'CNAME' || records.some((r) => r.type === 'CNAME'))
    return 'a CNAME cannot share its name with other records';
  return null;
}
