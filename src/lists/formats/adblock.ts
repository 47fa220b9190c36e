// The `adblock` format, reduced to what DNS can enforce: `||name^` blocks and `@@||name^`
// exceptions; every other rule kind is skipped and counted.
import { normalizeName } from '../names.js';
import type { ListSink } from '../parse.js';
import { ACTION_ALLOW, ACTION_DENY } from '../types.js';
import { nameProblem } from './problems.js';

/** Element-hiding and scriptlet separators: ##, #@#, #?#, #$#, #%# and their exceptions. */
const COSMETIC = /#@?[?$%]?#/;

/**
 * `||name^` covers name and its subdomains; `@@||name^` is an exception for the same names,
 * acting as an allow entry. `!` and `#` start comments (at the start of a line or after a
 * rule); `[Adblock Plus 2.0]` headers are comments too. Cosmetic rules, URL and path rules,
 * regular expressions, wildcards and rules with `$options` are skipped: DNS sees only the name.
 */
export function parseAdblockLine(text: string, lineNo: number, sink: ListSink): void {
  const body = text.trim();
  if (body === '') return;
  const first = body.charCodeAt(0);
  if (first === 0x21 /* ! */) return;
  if (first === 0x5b /* [ */ && body.endsWith(']')) return;
  if (COSMETIC.test(body)) {
    sink.skip(lineNo, 'cosmetic rule (page content, not a name)', text);
    return;
  }
  let end = body.length;
  const hash = body.indexOf('#');
  if (hash >= 0) end = hash;
  const bang = body.indexOf('!');
  if (bang >= 0 && bang < end) end = bang;
  let rule = end === body.length ? body : body.slice(0, end).trim();
  if (rule === '') return;
  let action: typeof ACTION_DENY | typeof ACTION_ALLOW = ACTION_DENY;
  if (rule.startsWith('@@')) {
    action = ACTION_ALLOW;
    rule = rule.slice(2);
  }
  if (rule.includes('$')) {
    sink.skip(lineNo, 'rule with $options', text);
    return;
  }
  if (!rule.startsWith('||') || !rule.endsWith('^') || rule.length < 4) {
    sink.skip(lineNo, rule.startsWith('/') ? 'regular-expression or path rule' : 'not a ||name^ rule', text);
    return;
  }
  const raw = rule.slice(2, -1);
  const name = normalizeName(raw);
  if (name === null) sink.skip(lineNo, nameProblem(raw), text);
  else sink.add(name, 'subtree', action, lineNo);
}
