// The `domains` format: one name per line, covering the name and everything under it.
import { beforeHash, normalizeName } from '../names.js';
import type { ListSink } from '../parse.js';
import { ACTION_DENY } from '../types.js';
import { nameProblem } from './problems.js';

/**
 * `example.com` covers example.com and its subdomains; `*.example.com` only its subdomains (as
 * in wildcard feeds); a leading `.` (`.example.com`, squid style) means the same as none.
 */
export function parseDomainsLine(text: string, lineNo: number, sink: ListSink): void {
  const body = beforeHash(text).trim();
  if (body === '') return;
  if (/\s/.test(body)) {
    sink.skip(lineNo, 'more than one word (a domains list holds one name per line)', text);
    return;
  }
  let raw = body;
  let kind: 'subtree' | 'wildcard' = 'subtree';
  if (raw.startsWith('*.')) {
    kind = 'wildcard';
    raw = raw.slice(2);
  } else if (raw.charCodeAt(0) === 0x2e && raw.length > 1) {
    raw = raw.slice(1);
  }
  const name = normalizeName(raw);
  if (name === null) sink.skip(lineNo, nameProblem(raw), text);
  else sink.add(name, kind, ACTION_DENY, lineNo);
}
