// What counts as a listable name, shared by every format's parser: ASCII host names, lowercased,
// without the trailing dot.

/** Longest name in presentation form without the trailing dot (255 wire bytes). */
export const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

/**
 * `raw` lowercased with one trailing dot removed, or null when it is not a name a list may hold:
 * empty, an empty label (`a..b`, a leading dot), a label over 63 or a name over 253 characters,
 * or a character outside letters, digits, `-` and `_`. IDNs are matched in their punycode
 * (`xn--`) form, which is plain ASCII; a name still in Unicode is rejected rather than guessed
 * at, since the query on the wire is never Unicode.
 */
export function normalizeName(raw: string): string | null {
  let end = raw.length;
  if (end > 0 && raw.charCodeAt(end - 1) === 0x2e) end--;
  if (end === 0 || end > MAX_NAME_LENGTH) return null;
  let labelStart = 0;
  let upper = false;
  for (let i = 0; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x2e) {
      const labelLength = i - labelStart;
      if (labelLength === 0 || labelLength > MAX_LABEL_LENGTH) return null;
      labelStart = i + 1;
    } else if (c >= 0x61 && c <= 0x7a) {
      // a-z
    } else if (c >= 0x41 && c <= 0x5a) {
      upper = true;
    } else if ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f) {
      // 0-9 - _
    } else {
      return null;
    }
  }
  const last = end - labelStart;
  if (last === 0 || last > MAX_LABEL_LENGTH) return null;
  const name = end === raw.length ? raw : raw.slice(0, end);
  return upper ? name.toLowerCase() : name;
}

/** Shortens a line for a skip report. */
export function excerpt(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The text before the first `#` (every format allows a comment anywhere on a line). */
export function beforeHash(line: string): string {
  const hash = line.indexOf('#');
  return hash < 0 ? line : line.slice(0, hash);
}
