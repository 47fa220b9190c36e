// Reasons given for names a parser rejects, worded once for every format.

/** Why `raw` (already known to fail normalizeName) is not a listable name. */
export function nameProblem(raw: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test is for any non-ASCII code
  if (/[^\x00-\x7f]/.test(raw)) return 'not ASCII (an IDN must be written in punycode, xn--)';
  return `not a host name: ${JSON.stringify(raw.length > 60 ? `${raw.slice(0, 59)}…` : raw)}`;
}
