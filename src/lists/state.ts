// The last good copy of each URL list in state_dir, used at start when the URL is unreachable
// and to make the first request of a restarted process a conditional one.
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** What is known about the copy's content, kept in the copy's first line. */
export interface StateMeta {
  /** The URL as shown (without userinfo or query: they may hold tokens). */
  readonly url: string;
  readonly etag: string | null;
  readonly lastModified: string | null;
  /** sha256 (hex) of the body. */
  readonly sha256: string;
  /** When it was fetched, ISO 8601. */
  readonly fetchedAt: string;
}

export interface StateCopy {
  readonly meta: StateMeta;
  /** The list's bytes as fetched. */
  readonly body: Uint8Array;
}

/** The first line of a copy starts with this, then the meta as JSON; the body follows the
 *  line. One file, replaced by one rename, so meta and body can never disagree. */
const MAGIC = '#dns-tool-list-copy ';

/**
 * `<stateDir>/lists/<list>.<first 16 hex of sha256(url)>.copy`: one copy per list and URL, the
 * list name made file-safe for whoever looks in the directory.
 */
export function stateCopyPath(stateDir: string, list: string, url: string): string {
  const safe = list.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  const digest = createHash('sha256').update(url).digest('hex').slice(0, 16);
  return join(stateDir, 'lists', `${safe}.${digest}.copy`);
}

/** Identifies the URL a copy is of without writing the URL (and any token in it) down. */
const urlDigest = (url: string): string => createHash('sha256').update(url).digest('hex');

/** The copy at `path`, or null when there is none or it is not one of ours (or for another
 *  URL). Read errors other than a missing file are thrown. */
export async function readStateCopy(path: string, url: string): Promise<StateCopy | null> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const nl = raw.indexOf(10);
  if (nl < 0 || raw.toString('latin1', 0, MAGIC.length) !== MAGIC) return null;
  let meta: StateMeta & { readonly urlSha256?: unknown };
  try {
    meta = JSON.parse(raw.toString('utf8', MAGIC.length, nl)) as StateMeta & { readonly urlSha256?: unknown };
  } catch {
    return null;
  }
  if (
    meta === null ||
    typeof meta !== 'object' ||
    meta.urlSha256 !== urlDigest(url) ||
    typeof meta.sha256 !== 'string'
  )
    return null;
  return {
    meta: {
      url: String(meta.url),
      etag: typeof meta.etag === 'string' ? meta.etag : null,
      lastModified: typeof meta.lastModified === 'string' ? meta.lastModified : null,
      sha256: meta.sha256,
      fetchedAt: String(meta.fetchedAt),
    },
    body: raw.subarray(nl + 1),
  };
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Replaces the copy at `path` atomically: written to a temporary sibling, flushed to disk, then
 * renamed over the old one, so a crash leaves either the old copy or the new, never half of one.
 */
export async function writeStateCopy(
  path: string,
  url: string,
  meta: StateMeta,
  body: readonly Uint8Array[],
): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(temp, 'wx', 0o600);
  try {
    const line = JSON.stringify({ ...meta, urlSha256: urlDigest(url) });
    await writeAll(fh, Buffer.from(`${MAGIC}${line}\n`));
    for (const chunk of body) await writeAll(fh, chunk);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(temp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
