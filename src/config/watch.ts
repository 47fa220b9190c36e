// Owns noticing that the config file may have changed — in-place writes, write-temp-then-rename
// and the Kubernetes ConfigMap `..data` symlink swap — and turning that into one debounced trigger.
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { watch } from 'chokidar';

export interface ConfigWatcher {
  close(): Promise<void>;
}

export interface WatchConfigOptions {
  /** Quiet time after the last directory event before the file is compared. Default 200 ms. */
  debounceMs?: number;
  /** Interval of the fallback comparison that catches missed events. Default 2000 ms. */
  pollMs?: number;
  /** Receives errors thrown (or rejected) by `onChange`, watcher errors, and the first failure
   *  to read the file after it was last readable (once per episode, not once per poll).
   *  Default: `process.emitWarning`. */
  onError?: (err: unknown) => void;
}

const DEFAULT_DEBOUNCE_MS = 200;
const DEFAULT_POLL_MS = 2000;

// A busy unrelated file in the same directory must not postpone the check forever: a burst of
// events delays it by at most this many debounce periods.
const MAX_DEBOUNCE_PERIODS = 5;

// File timestamps come from a coarse clock (one scheduler tick, up to 10 ms on Linux), so a second
// write in the same tick, with the same size, leaves every compared field unchanged. A snapshot
// taken this soon after the file's mtime may sit between two such writes; like git's "racily
// clean" index entries, it is not trusted alone: its content digest is kept and compared too.
const RACY_WINDOW_MS = 100;

// Digests are only taken of files up to this size; a larger config (none is near this) falls
// back to the timestamp comparison alone.
const MAX_DIGEST_BYTES = 4 * 1024 * 1024;

/** What identifies one version of the file, read without opening it unless the stat is racy. */
interface FileIdentity {
  readonly realPath: string;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  /** Present only when the stat was taken within RACY_WINDOW_MS of the mtime. */
  readonly racyDigest: string | undefined;
}

function sameStat(a: FileIdentity, b: FileIdentity): boolean {
  return (
    a.realPath === b.realPath &&
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

async function digestOf(realPath: string, size: bigint): Promise<string | undefined> {
  if (size > BigInt(MAX_DIGEST_BYTES)) return undefined;
  return createHash('sha256')
    .update(await readFile(realPath))
    .digest('base64');
}

async function readIdentity(path: string): Promise<FileIdentity> {
  // Resolve first so a symlink swap (ConfigMap `..data`) shows up as a new realPath even when the
  // new target happens to reuse the old inode number.
  const realPath = await realpath(path);
  const st = await stat(realPath, { bigint: true });
  const racy = Number(st.mtimeNs / 1_000_000n) >= Date.now() - RACY_WINDOW_MS;
  return {
    realPath,
    dev: st.dev,
    ino: st.ino,
    size: st.size,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    racyDigest: racy ? await digestOf(realPath, st.size) : undefined,
  };
}

async function differs(previous: FileIdentity | undefined, current: FileIdentity): Promise<boolean> {
  if (previous === undefined || !sameStat(previous, current)) return true;
  if (previous.racyDigest === undefined) return false;
  const currentDigest = current.racyDigest ?? (await digestOf(current.realPath, current.size));
  return currentDigest !== previous.racyDigest;
}

function defaultOnError(err: unknown): void {
  process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'ConfigWatchWarning');
}

/** Watch the config file at `path` and call `onChange()` (debounced by `debounceMs`) when its
 *  content may have changed. The directory holding `path` is watched, not the file, because
 *  renames and symlink swaps replace the file instead of writing to it; every event there leads
 *  to a comparison of (realpath, device, inode, size, mtime, ctime) with the last seen version,
 *  and only a difference calls `onChange`. A periodic comparison every `pollMs` (unref'd) catches
 *  events the platform dropped, and a target outside the directory. While the path cannot be
 *  resolved (mid-save, deleted) nothing is called: a reload could only fail; the comparison
 *  resumes when it reappears. Resolves once the directory watch is established and the file has
 *  been compared once (so a change made during setup has already been reported). */
export async function watchConfigFile(
  path: string,
  onChange: () => void,
  opts: WatchConfigOptions = {},
): Promise<ConfigWatcher> {
  const absPath = resolve(path);
  const dir = dirname(absPath);
  const debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const onError = opts.onError ?? defaultOnError;
  if (!(Number.isFinite(debounceMs) && debounceMs >= 0))
    throw new RangeError(`debounceMs must be >= 0, got ${debounceMs}`);
  if (!(Number.isFinite(pollMs) && pollMs > 0)) throw new RangeError(`pollMs must be > 0, got ${pollMs}`);

  const dirStat = await stat(dir);
  if (!dirStat.isDirectory())
    throw new Error(`cannot watch config file ${absPath}: ${dir} is not a directory`);

  // Taken before the watch starts, so a change made while it is being set up is still a
  // difference at the comparison run once the watch is ready.
  let lastSeen: FileIdentity | undefined = await readIdentity(absPath).catch(() => undefined);
  let unreadableReported = lastSeen === undefined;
  let closed = false;

  function notify(): void {
    try {
      const result: unknown = onChange();
      if (
        result !== null &&
        typeof result === 'object' &&
        typeof (result as PromiseLike<unknown>).then === 'function'
      ) {
        (result as PromiseLike<unknown>).then(undefined, onError);
      }
    } catch (err) {
      onError(err);
    }
  }

  // Checks run one at a time; a request arriving during one schedules exactly one more, so the
  // queue is bounded at one pending check.
  let checking = false;
  let checkAgain = false;

  async function compare(): Promise<void> {
    let current: FileIdentity;
    let changed: boolean;
    try {
      current = await readIdentity(absPath);
      changed = await differs(lastSeen, current);
    } catch (err) {
      // Missing mid-save, or replaced between stat and read: the event that did it schedules
      // another check, and the poll retries. Reported once per episode, not once per poll.
      if (!closed && !unreadableReported) {
        unreadableReported = true;
        onError(err);
      }
      return;
    }
    if (closed) return;
    unreadableReported = false;
    lastSeen = current;
    if (changed) notify();
  }

  async function check(): Promise<void> {
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = true;
    try {
      do {
        checkAgain = false;
        await compare();
      } while (checkAgain && !closed);
    } finally {
      checking = false;
    }
  }

  let ready = false;
  let debounceTimer: NodeJS.Timeout | undefined;
  let burstStartedAt = 0;
  const maxWaitMs = debounceMs * MAX_DEBOUNCE_PERIODS;

  function onDirEvent(): void {
    // chokidar reports symlinks found by the initial scan as 'add' even with ignoreInitial; the
    // comparison run at ready covers everything before it.
    if (closed || !ready) return;
    const now = Date.now();
    if (debounceTimer === undefined) burstStartedAt = now;
    else clearTimeout(debounceTimer);
    const wait = Math.max(0, Math.min(debounceMs, burstStartedAt + maxWaitMs - now));
    debounceTimer = setTimeout(() => {
      debounceTimer = undefined;
      void check();
    }, wait);
  }

  const watcher = watch(dir, {
    depth: 0,
    // Symlinks are entries of the directory to notice being replaced, not trees to descend:
    // following `..data` would watch the timestamped directory that is about to be deleted.
    followSymlinks: false,
    ignoreInitial: true,
    // Unreadable siblings are not this watcher's concern; the config file's own readability is
    // reported by the comparison.
    ignorePermissionErrors: true,
  });
  watcher.on('all', onDirEvent);
  // chokidar drops a file's 'change' when its mtime did not move (a second write in the same
  // timestamp tick); the raw event still arrives, and the comparison filters out the noise.
  watcher.on('raw', onDirEvent);
  watcher.on('error', (err: unknown) => {
    if (!closed) onError(err);
  });

  // Errors during the initial scan (a sibling vanishing mid-scan) go to onError like later ones;
  // chokidar still reports ready once the scan ends.
  await new Promise<void>((resolveReady) => watcher.once('ready', resolveReady));
  ready = true;
  // A change made while the watch was being set up has no event of its own.
  await check();

  const pollTimer = setInterval(() => void check(), pollMs);
  pollTimer.unref();

  return {
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(pollTimer);
      if (debounceTimer !== undefined) clearTimeout(debounceTimer);
      debounceTimer = undefined;
      await watcher.close();
    },
  };
}
