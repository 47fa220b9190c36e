// The fuzzer's packets: valid queries, mutations of them and hostile constructions, each a pure
// function of (seed, index), so a failure is reported by its index and rebuilt byte for byte.

/** mulberry32: a small, fast, seedable PRNG; plenty for picking mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit mix of seed and index (splitmix-style), so neighbouring indexes get unrelated streams. */
export function mix(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Rand {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Names the valid queries draw from: a small pool (cache hits) and unique names (misses). */
const POOL = ['a.fuzz.example', 'b.fuzz.example', 'www.example.com', 'blocked.fuzz', 'x.blocked.fuzz'];
/** Query types: common ones, ANY, zone transfers, OPT as a qtype, and unassigned values. */
const QTYPES = [1, 1, 1, 28, 28, 2, 5, 6, 12, 15, 16, 33, 41, 43, 48, 64, 65, 252, 251, 255, 0, 65535, 4242];
const QCLASSES = [1, 1, 1, 1, 3, 4, 254, 255, 0];

function label(r: Rand, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++)
    b[i] = r.chance(0.95) ? 0x61 + r.int(26) - (r.chance(0.2) ? 0x20 : 0) : r.int(256);
  return b;
}

/** Wire form of a name: from the pool, unique, or with long / odd labels. */
function wireName(r: Rand, index: number): Buffer {
  const roll = r.float();
  let labels: Buffer[];
  if (roll < 0.5) {
    labels = POOL[r.int(POOL.length)].split('.').map((l) => Buffer.from(l, 'latin1'));
  } else if (roll < 0.85) {
    labels = [Buffer.from(`u${index.toString(36)}`), Buffer.from('fuzz'), Buffer.from('example')];
  } else if (roll < 0.95) {
    labels = Array.from({ length: r.range(1, 6) }, () => label(r, r.range(1, 63)));
  } else {
    // around the limits: 63/64-octet labels, names of 254..257 octets on the wire
    labels = r.chance(0.5)
      ? Array.from({ length: 3 }, () => label(r, 63)).concat([label(r, r.range(60, 63))])
      : [label(r, r.pick([63, 64])), Buffer.from('example')];
  }
  const parts: Buffer[] = [];
  for (const l of labels) parts.push(Buffer.from([l.length & 0xff]), l);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.allocUnsafe(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

/** An OPT record: root owner, type 41, the given payload size, DO as given, and these options. */
function opt(r: Rand, udpSize: number, dnssecOk: boolean, options: Buffer = Buffer.alloc(0)): Buffer {
  const rr = Buffer.allocUnsafe(11);
  rr[0] = 0;
  rr.writeUInt16BE(41, 1);
  rr.writeUInt16BE(udpSize, 3);
  rr[5] = r.chance(0.05) ? r.int(256) : 0; // extended RCODE
  rr[6] = r.chance(0.05) ? r.int(256) : 0; // version
  rr.writeUInt16BE(dnssecOk ? 0x8000 : 0, 7);
  rr.writeUInt16BE(options.length, 9);
  return Buffer.concat([rr, options]);
}

/** EDNS options: cookies, ECS, padding, keepalive, unknown codes, and lengths that lie. */
function ednsOptions(r: Rand): Buffer {
  const parts: Buffer[] = [];
  for (let n = r.int(4); n > 0; n--) {
    const code = r.pick([8, 10, 11, 12, 3, 15, 65001, r.int(65536)]);
    const body = r.bytes(r.int(40));
    const head = Buffer.allocUnsafe(4);
    head.writeUInt16BE(code, 0);
    head.writeUInt16BE(r.chance(0.8) ? body.length : r.int(65536), 2);
    parts.push(head, body);
  }
  return Buffer.concat(parts);
}

/** A well-formed query (maybe with EDNS and options), what the mutations start from. */
export function validQuery(r: Rand, index: number): Buffer {
  const name = wireName(r, index);
  const q = Buffer.allocUnsafe(4);
  q.writeUInt16BE(r.pick(QTYPES), 0);
  q.writeUInt16BE(r.pick(QCLASSES), 2);
  const edns = r.chance(0.6);
  // RD usually, CD and AD sometimes
  const flags = (r.chance(0.9) ? 0x0100 : 0) | (r.chance(0.1) ? 0x0010 : 0) | (r.chance(0.1) ? 0x0020 : 0);
  const parts = [header(0, flags, 1, 0, 0, edns ? 1 : 0), name, q];
  if (edns) {
    const size = r.pick([512, 1232, 4096, 65535, 0, 100, r.int(65536)]);
    parts.push(opt(r, size, r.chance(0.3), r.chance(0.2) ? ednsOptions(r) : Buffer.alloc(0)));
  }
  return Buffer.concat(parts);
}

function flipBits(r: Rand, msg: Buffer): Buffer {
  const out = Buffer.from(msg);
  for (let n = r.range(1, 8); n > 0 && out.length > 0; n--) out[r.int(out.length)] ^= 1 << r.int(8);
  return out;
}

/** A resource record whose owner is a compression pointer to `target`. */
function pointerRecord(target: number, type: number, rdata: Buffer): Buffer {
  const rr = Buffer.allocUnsafe(12);
  rr.writeUInt16BE(0xc000 | (target & 0x3fff), 0);
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(300, 6);
  rr.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([rr, rdata]);
}

/** Compression pointers that loop, point forward, past the end, or into the header. */
function pointerLoop(r: Rand, index: number): Buffer {
  const base = validQuery(r, index);
  switch (r.int(5)) {
    case 0: {
      // the question name is a pointer to itself
      const h = header(0, 0x0100, 1, 0, 0, 0);
      return Buffer.concat([h, Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    }
    case 1: {
      // two records whose owners point at each other, announced as many more
      const a = base.length;
      const b = a + 12;
      const out = Buffer.concat([
        base,
        pointerRecord(b, 1, Buffer.alloc(0)),
        pointerRecord(a, 1, Buffer.alloc(0)),
      ]);
      out.writeUInt16BE(r.pick([2, 3, 0xffff]), 10);
      return out;
    }
    case 2: {
      // an answer record (in a query) with a pointer past the end
      const out = Buffer.concat([base, pointerRecord(0x3fff, 1, Buffer.from([1, 2, 3, 4]))]);
      out.writeUInt16BE(1, 6);
      return out;
    }
    case 3: {
      // a name that is a label then a pointer back to its own start
      const h = header(0, 0x0100, 1, 0, 0, 0);
      return Buffer.concat([h, Buffer.from([3, 0x61, 0x62, 0x63, 0xc0, 12, 0, 1, 0, 1])]);
    }
    default: {
      // a record whose rdata is a chain of pointers to itself (e.g. a CNAME)
      const at = base.length + 12;
      const out = Buffer.concat([base, pointerRecord(12, 5, Buffer.from([0xc0 | (at >> 8), at & 0xff]))]);
      out.writeUInt16BE(1, 10);
      return out;
    }
  }
}

/** Counts that do not match the body. */
function wrongCounts(r: Rand, index: number): Buffer {
  const out = validQuery(r, index);
  const field = r.pick([4, 6, 8, 10]);
  out.writeUInt16BE(r.pick([0, 2, 3, 255, 0xffff, r.int(65536)]), field);
  return out;
}

/** OPT abuse: two OPTs, OPT in the answer section, rdata length past the end, options lying. */
function optAbuse(r: Rand, index: number): Buffer {
  const h = header(0, 0x0100, 1, 0, 0, 1);
  const name = wireName(r, index);
  const q = Buffer.from([0, 1, 0, 1]);
  switch (r.int(4)) {
    case 0: {
      h.writeUInt16BE(2, 10);
      return Buffer.concat([h, name, q, opt(r, 1232, true), opt(r, 4096, false)]);
    }
    case 1: {
      h.writeUInt16BE(1, 6);
      h.writeUInt16BE(0, 10);
      return Buffer.concat([h, name, q, opt(r, 1232, false)]);
    }
    case 2: {
      const o = opt(r, 1232, false);
      o.writeUInt16BE(r.range(1, 65535), 9);
      return Buffer.concat([h, name, q, o]);
    }
    default:
      return Buffer.concat([h, name, q, opt(r, r.int(65536), r.chance(0.5), ednsOptions(r))]);
  }
}

export type PacketKind =
  | 'valid'
  | 'bitflip'
  | 'truncated'
  | 'junk-tail'
  | 'random'
  | 'header-only'
  | 'pointer'
  | 'counts'
  | 'opt'
  | 'opcode-qr';

/** Relative weight of each kind (sums to 100). */
const KINDS: ReadonlyArray<[PacketKind, number]> = [
  ['valid', 14],
  ['bitflip', 22],
  ['truncated', 10],
  ['junk-tail', 5],
  ['random', 10],
  ['header-only', 8],
  ['pointer', 10],
  ['counts', 7],
  ['opt', 8],
  ['opcode-qr', 6],
];

export interface FuzzPacket {
  kind: PacketKind;
  bytes: Buffer;
}

/** Packet number `index` of the run seeded `seed` (the ID octets are the sender's to set). */
export function packetAt(seed: number, index: number): FuzzPacket {
  const r = new Rand(mix(seed, index));
  let roll = r.int(100);
  let kind: PacketKind = 'valid';
  for (const [k, w] of KINDS) {
    if (roll < w) {
      kind = k;
      break;
    }
    roll -= w;
  }
  let bytes: Buffer;
  switch (kind) {
    case 'valid':
      bytes = validQuery(r, index);
      break;
    case 'bitflip':
      bytes = flipBits(r, validQuery(r, index));
      break;
    case 'truncated': {
      const q = validQuery(r, index);
      bytes = q.subarray(0, r.int(q.length));
      break;
    }
    case 'junk-tail':
      bytes = Buffer.concat([validQuery(r, index), r.bytes(r.range(1, 64))]);
      break;
    case 'random':
      bytes = r.bytes(r.chance(0.9) ? r.int(600) : r.int(4096));
      break;
    case 'header-only': {
      const h = header(0, r.int(65536), r.int(4), r.int(3), r.int(3), r.int(3));
      bytes = Buffer.concat([h, r.bytes(r.int(24))]);
      break;
    }
    case 'pointer':
      bytes = pointerLoop(r, index);
      break;
    case 'counts':
      bytes = wrongCounts(r, index);
      break;
    case 'opt':
      bytes = optAbuse(r, index);
      break;
    default: {
      const q = validQuery(r, index);
      if (r.chance(0.5)) q[2] |= 0x80;
      else q[2] = (q[2] & 0x87) | (r.range(1, 15) << 3);
      bytes = q;
    }
  }
  return { kind, bytes };
}
