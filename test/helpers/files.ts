// File writes for tests that change a config under a running gateway.
import { rename, writeFile } from 'node:fs/promises';

/** Replaces `path` atomically (write a sibling, rename over), so a watcher never sees it half written. */
export async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}
