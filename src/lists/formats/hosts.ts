// The `hosts` format: `0.0.0.0 name [name...]` lines, each name matched exactly.
import { isIP } from 'node:net';
import { beforeHash, normalizeName } from '../names.js';
import type { ListSink } from '../parse.js';
import { ACTION_DENY } from '../types.js';
import { nameProblem } from './problems.js';

/** The addresses blocklists map names to; a line with any other address is a real mapping. */
const BLOCK_ADDRESSES: ReadonlySet<string> = new Set([
  '0.0.0.0',
  '127.0.0.1',
  '::',
  '::1',
  '0:0:0:0:0:0:0:0',
  '0:0:0:0:0:0:0:1',
]);

/** Names that published hosts files carry for the machine itself, never as entries to block. */
const LOCAL_NAMES: ReadonlySet<string> = new Set([
  'localhost',
  'localhost.localdomain',
  'local',
  'broadcasthost',
  'ip6-localhost',
  'ip6-loopback',
  'ip6-localnet',
  'ip6-mcastprefix',
  'ip6-allnodes',
  'ip6-allrouters',
  'ip6-allhosts',
  '0.0.0.0',
]);

/**
 * Names after 0.0.0.0, 127.0.0.1, :: or ::1 are exact entries. A line with another address
 * (`192.168.1.1 router`) and the machine's own names (`127.0.0.1 localhost`) are ignored:
 * counted, not reported. Anything else is skipped and reported.
 */
export function parseHostsLine(text: string, lineNo: number, sink: ListSink): void {
  const body = beforeHash(text).trim();
  if (body === '') return;
  const words = body.split(/\s+/);
  const address = words[0];
  if (!BLOCK_ADDRESSES.has(address)) {
    // fe80::1%lo0: a scoped address is still an address
    const percent = address.indexOf('%');
    if (isIP(percent < 0 ? address : address.slice(0, percent)) !== 0) sink.ignore(lineNo);
    else sink.skip(lineNo, 'does not start with an address (0.0.0.0 name ...)', text);
    return;
  }
  if (words.length === 1) {
    sink.skip(lineNo, 'an address without names', text);
    return;
  }
  for (let i = 1; i < words.length; i++) {
    const word = words[i];
    const name = normalizeName(word);
    if (name === null) sink.skip(lineNo, nameProblem(word), text);
    else if (LOCAL_NAMES.has(name)) sink.ignore(lineNo);
    else sink.add(name, 'exact', ACTION_DENY, lineNo);
  }
}
