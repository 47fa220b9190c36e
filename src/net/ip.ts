// The hot-path parser of client addresses, as sockets report them: one for the policy table
// and the rate limiter alike. No BigInt and no allocation: IPv4 is one unsigned 32-bit number,
// IPv6 four of them. Config files are parsed with ip-num, where speed does not matter; the
// property tests hold this parser to ip-num's reading.

/** `parseAddress` result: an IPv6 address, its four words written to `out`. */
export const ADDRESS_V6 = -1;
/** `parseAddress` result: not an IP literal. */
export const ADDRESS_INVALID = -2;

/**
 * A client address: its IPv4 value (0 … 2^32-1) for IPv4 and for IPv4-mapped IPv6
 * (::ffff:a.b.c.d, however it is spelled: that is an IPv4 client on a dual-stack socket),
 * ADDRESS_V6 for any other IPv6 address (big-endian 32-bit words in `out[0..3]`), or
 * ADDRESS_INVALID. A zone index (`%eth0`) is ignored. Never throws.
 */
export function parseAddress(s: string, out: Uint32Array): number {
  const v4 = parseIpv4(s, 0, s.length);
  if (v4 >= 0) return v4;
  if (!parseIpv6(s, out)) return ADDRESS_INVALID;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) return out[3];
  return ADDRESS_V6;
}

/**
 * Dotted-quad IPv4 in `s[start, end)` as an unsigned 32-bit number, or -1. Each part is a
 * decimal number up to 255 without leading zeros (as ip-num reads them; inet_aton would take
 * "010" as octal, so the form is refused rather than guessed).
 */
export function parseIpv4(s: string, start = 0, end = s.length): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1; // a leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

/** Scratch of the eight 16-bit groups: one address is parsed at a time. */
const groups = new Uint16Array(8);

/**
 * IPv6 text into `out` as four big-endian 32-bit words; false (and `out` unspecified) when it
 * is not IPv6. Accepts one '::', an IPv4 tail in the last 32 bits and a zone index after '%'
 * (ignored). Groups are 1 to 4 hex digits, either case.
 */
export function parseIpv6(s: string, out: Uint32Array): boolean {
  let end = s.indexOf('%');
  if (end < 0) end = s.length;
  else if (end === s.length - 1) return false; // '%' with no zone
  let n = 0;
  let gap = -1;
  let i = 0;
  if (end >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (n >= 8) return false;
    const start = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < end && s.charCodeAt(i) === 46) {
      // An IPv4 tail: the last two groups, and the end of the address.
      if (n > 6) return false;
      const v4 = parseIpv4(s, start, end);
      if (v4 < 0) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    groups[n++] = value;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) {
      return false; // a trailing single ':'
    }
  }
  if (gap < 0) {
    if (n !== 8) return false;
  } else {
    // '::' stands for at least one group of zeros.
    if (n > 7) return false;
    const zeros = 8 - n;
    for (let k = n - 1; k >= gap; k--) groups[k + zeros] = groups[k];
    for (let k = gap; k < gap + zeros; k++) groups[k] = 0;
  }
  out[0] = (groups[0] << 16) | groups[1];
  out[1] = (groups[2] << 16) | groups[3];
  out[2] = (groups[4] << 16) | groups[5];
  out[3] = (groups[6] << 16) | groups[7];
  return true;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The mask of the first `prefix` bits of 32-bit word `word` (0-based) of an address. */
export function wordMask(prefix: number, word: number): number {
  const bits = prefix - word * 32;
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}
