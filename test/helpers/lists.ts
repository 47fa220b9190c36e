// Builds list content from text the way the loader does, for tests of the lists module.
import { buildSource, runSync, type SourceBuild } from '../../src/lists/build.js';
import { ListSnapshot } from '../../src/lists/list.js';
import type { ListFormat, ListHit } from '../../src/lists/types.js';

export interface BuiltText {
  readonly build: SourceBuild;
  readonly snapshot: ListSnapshot;
  /** The hit as a plain object (or null), for deepEqual. */
  match(name: string): Pick<ListHit, 'action' | 'entry' | 'kind' | 'line'> | null;
}

/** `text` built as one source named `source` of a list named `list`. */
export function buildText(format: ListFormat, text: string, source = 'list.txt', list = 'test'): BuiltText {
  const build = runSync(buildSource(format, [Buffer.from(text, 'utf8')], source, null));
  if (build === null) throw new Error('a build without a previous hash returned unchanged');
  const snapshot = new ListSnapshot(list, format, 'enforce', [
    { source, main: build.main, exceptions: build.exceptions, hash: build.hash, entries: build.entries },
  ]);
  return {
    build,
    snapshot,
    match(name) {
      const hit = snapshot.match(name);
      return hit === null ? null : { action: hit.action, entry: hit.entry, kind: hit.kind, line: hit.line };
    },
  };
}

/** Polls `predicate` every 10 ms until it holds; fails after `timeoutMs` naming `what`. The
 *  default is generous: file events and builds are slow on a loaded machine, never this slow. */
export async function waitUntil(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
