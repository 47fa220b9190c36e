// One named list: its sources (files, watched; URLs, refreshed), the content each last loaded
// well, and the immutable snapshot of all of them that lookups read. A source that fails keeps
// its last good content; a change to one source rebuilds that source alone and swaps the
// snapshot in one assignment.
import { readFile, stat } from 'node:fs/promises';
import { type ConfigWatcher, watchConfigFile } from '../config/watch.js';
import {
  buildSource,
  copyForTransfer,
  DEFAULT_SLICE_MS,
  enqueueBuild,
  runSliced,
  type SourceBuild,
} from './build.js';
import { describeError, ListError } from './errors.js';
import { displayUrl, fetchList } from './fetch.js';
import type { NameSet, Slot } from './name-set.js';
import { readStateCopy, type StateCopy, stateCopyPath, writeStateCopy } from './state.js';
import type {
  EntryKind,
  ListAction,
  ListConfig,
  ListFormat,
  ListHit,
  ListMode,
  LocalRecord,
  RefreshResult,
  SkipReport,
} from './types.js';
import { BuildWorkerError, buildOnWorker } from './worker.js';

/** What one source contributes to a snapshot. */
export interface SourceContent {
  /** The file path or URL. */
  readonly source: string;
  readonly main: NameSet;
  /** adblock `@@` exceptions; null for other formats. */
  readonly exceptions: NameSet | null;
  /** sha256 (hex) of the bytes it was built from. */
  readonly hash: string;
  readonly entries: number;
}

/** A matched entry, read from the set only when asked (a hit costs one small object). */
class Hit implements ListHit {
  constructor(
    readonly list: string,
    readonly source: string,
    private readonly set: NameSet,
    private readonly slot: Slot,
  ) {}
  get action(): ListAction {
    return this.set.action(this.slot);
  }
  get entry(): string {
    return this.set.entry(this.slot);
  }
  get kind(): EntryKind {
    return this.set.kind(this.slot);
  }
  get line(): number {
    return this.set.line(this.slot);
  }
  get local(): readonly LocalRecord[] | null {
    return this.set.local(this.slot);
  }
  toJSON(): ListHit {
    const { list, action, entry, kind, source, line, local } = this;
    return { list, action, entry, kind, source, line, local };
  }
}

/**
 * The content of a list at one moment: immutable, so a query that started on it finishes on
 * it while a newer one is swapped in.
 */
export class ListSnapshot {
  /** Distinct names over all sources (a name in two sources counts twice). */
  readonly entries: number;

  constructor(
    readonly name: string,
    readonly format: ListFormat,
    readonly mode: ListMode,
    readonly sources: readonly SourceContent[],
  ) {
    let entries = 0;
    for (const s of sources) entries += s.entries;
    this.entries = entries;
  }

  /**
   * The entry `name` matches, or null. Within a source the most specific entry wins (the name
   * itself, then the longest listed parent). Across sources the first in config order with a
   * match wins (files, then URLs), except in adblock lists, where an `@@` exception in any
   * source beats every block, as in the browsers' filter engines.
   */
  match(name: string): ListHit | null {
    const sources = this.sources;
    if (this.format === 'adblock') {
      for (let i = 0; i < sources.length; i++) {
        const set = sources[i].exceptions;
        if (set === null) continue;
        const slot = set.lookup(name);
        if (slot >= 0) return new Hit(this.name, sources[i].source, set, slot);
      }
    }
    for (let i = 0; i < sources.length; i++) {
      const set = sources[i].main;
      const slot = set.lookup(name);
      if (slot >= 0) return new Hit(this.name, sources[i].source, set, slot);
    }
    return null;
  }
}

/** Where the content a source holds came from. */
export type ContentOrigin = 'file' | 'network' | 'state_copy';

/** One load of one source (start, refresh, file change), reported once. */
export interface SourceLoadReport {
  readonly list: string;
  readonly source: string;
  readonly kind: 'file' | 'url';
  readonly result: RefreshResult;
  /** Where the content now in use came from; null: never loaded. */
  readonly origin: ContentOrigin | null;
  /** Names the source holds after this load; 0 when never loaded. */
  readonly entries: number;
  /** Lines skipped by this load's build; null when nothing was built (unchanged, or failed). */
  readonly skipped: SkipReport | null;
  readonly ignored: number;
  readonly duplicates: number;
  readonly error: ListError | null;
  readonly durationMs: number;
}

export interface ListEvents {
  /** Every load of every source, once: log a warning when `skipped.count` or `error`. */
  readonly load?: (report: SourceLoadReport) => void;
  /** A new snapshot is in place (content or mode changed). */
  readonly change?: (list: ManagedList) => void;
  /** One refresh of the list ended: the initial load, a timed URL refresh, a file change.
   *  `dns_tool_list_refreshes_total{list,result}`; `atMs` is the clock's time. */
  readonly refresh?: (list: string, result: RefreshResult, atMs: number) => void;
  /** Watcher and state-copy problems that are not a failed load. */
  readonly error?: (list: string, err: Error) => void;
}

export interface ListLoaderOptions {
  /** Where URL copies are kept; null or absent: none. */
  readonly stateDir?: string | null;
  /** Whole exchange per URL. Default 30 s. */
  readonly fetchTimeoutMs?: number;
  /** Largest file or body accepted, in bytes. Default 64 MiB (a million names take ~30 MB). */
  readonly maxBytes?: number;
  /** Longest a build on this thread holds the event loop per slice. Default 1 ms. */
  readonly sliceMs?: number;
  /** Content of at least this many bytes is built on a worker thread (its parse and garbage
   *  collections then never pause queries); smaller content, in slices on this thread, where
   *  it costs less than starting a worker. Default 1 MiB; Infinity: never. */
  readonly workerMinBytes?: number;
  /** No network, timers or watches: URLs come from their state_dir copies only (explain, check). */
  readonly offline?: boolean;
  /** Watch files. Default: true unless offline. */
  readonly watch?: boolean;
  readonly watchDebounceMs?: number;
  readonly watchPollMs?: number;
  /** First retry after a failed URL refresh; doubles per failure, capped at the refresh period.
   *  Default 5 s. */
  readonly retryMinMs?: number;
  /** Wall clock for timestamps. Default Date.now. */
  readonly now?: () => number;
  readonly events?: ListEvents;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETRY_MIN_MS = 5000;
export const DEFAULT_WORKER_MIN_BYTES = 1024 * 1024;
/** setTimeout's longest delay; longer periods are chained. */
const MAX_TIMER_MS = 0x7fffffff;

/** What a source carries into the list that replaces its list on a config reload. */
export interface SourceSeed {
  readonly content: SourceContent | null;
  readonly origin: ContentOrigin | null;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly persistedHash: string | null;
  readonly lastSuccessMs: number | null;
}

interface SourceState {
  readonly kind: 'file' | 'url';
  /** Path or URL. */
  readonly id: string;
  /** What messages, reports and hits show: the path, or the URL without its secrets. */
  readonly label: string;
  content: SourceContent | null;
  origin: ContentOrigin | null;
  /** Validators of `content` (URLs). */
  etag: string | null;
  lastModified: string | null;
  /** sha256 of the body in the state_dir copy. */
  persistedHash: string | null;
  lastResult: RefreshResult | null;
  lastError: ListError | null;
  lastSuccessMs: number | null;
  running: Promise<RefreshResult> | null;
  again: boolean;
}

export interface SourceStats {
  readonly source: string;
  readonly kind: 'file' | 'url';
  readonly loaded: boolean;
  readonly origin: ContentOrigin | null;
  readonly entries: number;
  readonly lastResult: RefreshResult | null;
  readonly lastError: string | null;
  readonly lastErrorCode: string | null;
  readonly lastSuccessMs: number | null;
}

export interface ListStats {
  readonly name: string;
  readonly format: ListFormat;
  readonly mode: ListMode;
  /** Every source has content. */
  readonly ready: boolean;
  /** `dns_tool_list_entries{list}`. */
  readonly entries: number;
  /** `dns_tool_list_refreshes_total{list,result}`. */
  readonly refreshes: Readonly<Record<RefreshResult, number>>;
  /** `dns_tool_list_last_success_timestamp_seconds{list}` × 1000: the last refresh that ended
   *  in success or not_modified (a 304 confirms the content is current); null: none yet. */
  readonly lastSuccessMs: number | null;
  readonly sources: readonly SourceStats[];
}

function combine(results: readonly RefreshResult[]): RefreshResult {
  if (results.includes('failure')) return 'failure';
  if (results.includes('success')) return 'success';
  return 'not_modified';
}

function asListError(err: unknown, fallback: (message: string) => ListError): ListError {
  return err instanceof ListError ? err : fallback(describeError(err));
}

/**
 * One named list, loaded and kept current. {@link start} loads every source once (and starts
 * the file watches and the URL refresh timer); {@link match} reads the current snapshot. Never
 * throws from a load: failures keep the last good content and are reported through the events
 * and {@link stats}.
 */
export class ManagedList {
  readonly name: string;
  private cfg: ListConfig;
  private current: ListSnapshot;
  private readonly sources: SourceState[];
  private readonly opts: ListLoaderOptions;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private readonly watchers: ConfigWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private starting: Promise<void> | null = null;
  private refreshing: Promise<RefreshResult> | null = null;
  private consecutiveFailures = 0;
  private closed = false;
  private readonly counts: Record<RefreshResult, number> = { success: 0, not_modified: 0, failure: 0 };
  private lastSuccessMs: number | null = null;

  constructor(config: ListConfig, opts: ListLoaderOptions = {}, seeds?: ReadonlyMap<string, SourceSeed>) {
    this.name = config.name;
    this.cfg = config;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    const state = (kind: 'file' | 'url', id: string): SourceState => {
      const seed = seeds?.get(`${kind}\n${id}`);
      return {
        kind,
        id,
        label: kind === 'url' ? displayUrl(id) : id,
        content: seed?.content ?? null,
        origin: seed?.origin ?? null,
        etag: seed?.etag ?? null,
        lastModified: seed?.lastModified ?? null,
        persistedHash: seed?.persistedHash ?? null,
        lastResult: null,
        lastError: null,
        lastSuccessMs: seed?.lastSuccessMs ?? null,
        running: null,
        again: false,
      };
    };
    this.sources = [...config.files.map((f) => state('file', f)), ...config.urls.map((u) => state('url', u))];
    this.current = this.snapshotOf();
  }

  get config(): ListConfig {
    return this.cfg;
  }

  /** The content lookups read now. */
  get snapshot(): ListSnapshot {
    return this.current;
  }

  /** See {@link ListSnapshot.match}; reads the current snapshot. */
  match(name: string): ListHit | null {
    return this.current.match(name);
  }

  /** Every source has content (from its file, a fetch, or a state_dir copy). A list that is
   *  not ready still answers from the sources that are. */
  get ready(): boolean {
    return this.sources.every((s) => s.content !== null);
  }

  /**
   * Loads every source once (files read; URLs fetched, falling back to their state_dir copy),
   * then watches the files and starts the refresh timer. Resolves when every source has
   * settled, loaded or not; never rejects. Calling it again returns the same promise.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    const watch = this.opts.watch ?? !this.opts.offline;
    if (watch) {
      // Watches first: a change made while the first read is under way is then not missed.
      for (const s of this.sources) if (s.kind === 'file') await this.watchFile(s);
    }
    if (this.closed) return;
    const results = await Promise.all(this.sources.map((s) => this.loadSource(s)));
    this.counted(combine(results));
    if (results.includes('failure') && this.sources.some((s) => s.kind === 'url'))
      this.consecutiveFailures = 1;
    this.scheduleRefresh();
  }

  /** Fetches every URL source now (a refresh already running is joined, not repeated). */
  refresh(): Promise<RefreshResult> {
    if (this.refreshing !== null) return this.refreshing;
    const run = async (): Promise<RefreshResult> => {
      const urls = this.sources.filter((s) => s.kind === 'url');
      const result = combine(await Promise.all(urls.map((s) => this.loadSource(s))));
      this.counted(result);
      this.consecutiveFailures = result === 'failure' ? this.consecutiveFailures + 1 : 0;
      return result;
    };
    this.refreshing = run().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /**
   * Takes a new config of the same sources and format (mode, refresh): swaps the snapshot if
   * the mode changed and restarts the timer if the period did. Anything else needs a new list
   * (see {@link seeds}).
   */
  reconfigure(config: ListConfig): void {
    const modeChanged = config.mode !== this.cfg.mode;
    const refreshChanged = config.refreshMs !== this.cfg.refreshMs;
    this.cfg = config;
    if (modeChanged) this.swap();
    if (refreshChanged && this.starting !== null) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.scheduleRefresh();
    }
  }

  /** What each source carries into a list replacing this one with `config` (same format;
   *  keyed by kind and path or URL): content, validators and copy state, so an unchanged
   *  source is neither fetched in full nor rebuilt. Empty when the format differs. Pass
   *  `sameStateDir` false when the new list keeps its copies elsewhere. */
  seeds(config: ListConfig, sameStateDir = true): ReadonlyMap<string, SourceSeed> {
    const out = new Map<string, SourceSeed>();
    if (config.format !== this.cfg.format) return out;
    for (const s of this.sources) {
      out.set(`${s.kind}\n${s.id}`, {
        content: s.content,
        origin: s.origin,
        etag: s.etag,
        lastModified: s.lastModified,
        // A new state_dir has no copy yet: the next fetch writes one.
        persistedHash: sameStateDir ? s.persistedHash : null,
        lastSuccessMs: s.lastSuccessMs,
      });
    }
    return out;
  }

  stats(): ListStats {
    return {
      name: this.name,
      format: this.cfg.format,
      mode: this.cfg.mode,
      ready: this.ready,
      entries: this.current.entries,
      refreshes: { ...this.counts },
      lastSuccessMs: this.lastSuccessMs,
      sources: this.sources.map((s) => ({
        source: s.label,
        kind: s.kind,
        loaded: s.content !== null,
        origin: s.origin,
        entries: s.content?.entries ?? 0,
        lastResult: s.lastResult,
        lastError: s.lastError?.message ?? null,
        lastErrorCode: s.lastError?.code ?? null,
        lastSuccessMs: s.lastSuccessMs,
      })),
    };
  }

  /** Stops the timer and the watches, aborts fetches and builds under way; waits for them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await Promise.all(this.watchers.map((w) => w.close()));
    await Promise.all(this.sources.map((s) => s.running?.catch(() => undefined)));
    await this.starting;
  }

  // ---- internals -------------------------------------------------------------------------

  private snapshotOf(): ListSnapshot {
    const contents: SourceContent[] = [];
    for (const s of this.sources) if (s.content !== null) contents.push(s.content);
    return new ListSnapshot(this.name, this.cfg.format, this.cfg.mode, contents);
  }

  private swap(): void {
    this.current = this.snapshotOf();
    this.opts.events?.change?.(this);
  }

  private counted(result: RefreshResult): void {
    if (this.closed) return;
    this.counts[result]++;
    const at = this.now();
    if (result !== 'failure') this.lastSuccessMs = at;
    this.opts.events?.refresh?.(this.name, result, at);
  }

  private reportError(err: unknown): void {
    if (this.closed) return;
    this.opts.events?.error?.(this.name, err instanceof Error ? err : new Error(String(err)));
  }

  private async watchFile(s: SourceState): Promise<void> {
    try {
      const watcher = await watchConfigFile(s.id, () => this.onFileEvent(s), {
        debounceMs: this.opts.watchDebounceMs,
        pollMs: this.opts.watchPollMs,
        // The file became unreadable (deleted, permissions): try it, so the failure is counted.
        onError: (err) => {
          this.reportError(err);
          this.onFileEvent(s);
        },
      });
      if (this.closed) await watcher.close();
      else this.watchers.push(watcher);
    } catch (err) {
      this.reportError(new Error(`list ${this.name}: cannot watch ${s.id}: ${describeError(err)}`));
    }
  }

  private onFileEvent(s: SourceState): void {
    // Before start's own read, a change is already covered by it.
    if (this.closed || this.starting === null) return;
    void this.loadSource(s).then((result) => this.counted(result));
  }

  /** Loads one source, one load at a time: a request during a load makes exactly one more
   *  after it (the queue is bounded at one pending load per source). */
  private loadSource(s: SourceState): Promise<RefreshResult> {
    if (s.running !== null) {
      s.again = true;
      return s.running;
    }
    const run = async (): Promise<RefreshResult> => {
      let result: RefreshResult;
      do {
        s.again = false;
        result = s.kind === 'file' ? await this.loadFile(s) : await this.loadUrl(s);
      } while (s.again && !this.closed);
      return result;
    };
    s.running = run().finally(() => {
      s.running = null;
    });
    return s.running;
  }

  private maxBytes(): number {
    return this.opts.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Builds content on a worker thread when it is large, else in slices on this thread (and
   *  there too if the worker fails). The chunks stay usable (a copy goes to the worker). */
  private async build(
    input: readonly Uint8Array[] | { readonly path: string; readonly size: number },
    source: string,
    previousHash: string | null,
  ): Promise<SourceBuild | null> {
    let total = 0;
    if ('path' in input) total = input.size;
    else for (const c of input) total += c.length;
    const signal = this.abort.signal;
    if (total >= (this.opts.workerMinBytes ?? DEFAULT_WORKER_MIN_BYTES)) {
      try {
        return await enqueueBuild(async () =>
          buildOnWorker(
            this.cfg.format,
            // A file is read by the worker itself: its bytes never pass through this thread.
            'path' in input ? { path: input.path, maxBytes: this.maxBytes() } : await copyForTransfer(input),
            source,
            previousHash,
            signal,
          ),
        );
      } catch (err) {
        if (!(err instanceof BuildWorkerError)) throw err;
        this.reportError(
          new Error(`list ${this.name}: ${err.message}; building ${source} on the main thread`),
        );
      }
    }
    const chunks = 'path' in input ? [await this.readFileBytes(input.path)] : input;
    return runSliced(
      buildSource(this.cfg.format, chunks, source, previousHash),
      this.opts.sliceMs ?? DEFAULT_SLICE_MS,
      signal,
    );
  }

  /** Puts a finished build in place, or throws LIST_NO_ENTRIES for content that is all junk. */
  private install(s: SourceState, build: SourceBuild, origin: ContentOrigin): void {
    if (build.entries === 0 && build.skipped.count > 0)
      throw new ListError(
        'LIST_NO_ENTRIES',
        `${s.label}: none of its ${build.skipped.count} non-comment lines is a ${this.cfg.format} entry (is it the right format, or an error page?)`,
      );
    s.content = {
      source: s.label,
      main: build.main,
      exceptions: build.exceptions,
      hash: build.hash,
      entries: build.entries,
    };
    s.origin = origin;
    if (!this.closed) this.swap();
  }

  private finishLoad(
    s: SourceState,
    started: number,
    result: RefreshResult,
    build: SourceBuild | null,
    error: ListError | null,
  ): RefreshResult {
    s.lastResult = result;
    s.lastError = error;
    if (result !== 'failure') s.lastSuccessMs = this.now();
    if (!this.closed)
      this.opts.events?.load?.({
        list: this.name,
        source: s.label,
        kind: s.kind,
        result,
        origin: s.origin,
        entries: s.content?.entries ?? 0,
        skipped: build?.skipped ?? null,
        ignored: build?.ignored ?? 0,
        duplicates: build?.duplicates ?? 0,
        error,
        durationMs: performance.now() - started,
      });
    return result;
  }

  /** The file's bytes, within the size cap (it may have grown since it was looked at). */
  private async readFileBytes(path: string): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw asListError(err, (m) => new ListError('LIST_READ', `${path}: ${m}`));
    }
    if (bytes.length > this.maxBytes())
      throw new ListError('LIST_TOO_LARGE', `${path}: over the ${this.maxBytes()}-byte cap`);
    return bytes;
  }

  private async loadFile(s: SourceState): Promise<RefreshResult> {
    const started = performance.now();
    let build: SourceBuild | null = null;
    try {
      let size: number;
      try {
        const st = await stat(s.id);
        if (!st.isFile()) throw new ListError('LIST_READ', `${s.id}: not a regular file`);
        size = st.size;
      } catch (err) {
        throw asListError(err, (m) => new ListError('LIST_READ', `${s.id}: ${m}`));
      }
      if (size > this.maxBytes())
        throw new ListError('LIST_TOO_LARGE', `${s.id}: ${size} bytes, over the ${this.maxBytes()}-byte cap`);
      build = await this.build({ path: s.id, size }, s.id, s.content?.hash ?? null);
      if (build === null) return this.finishLoad(s, started, 'not_modified', null, null);
      this.install(s, build, 'file');
      return this.finishLoad(s, started, 'success', build, null);
    } catch (err) {
      const error = asListError(err, (m) => new ListError('LIST_READ', `${s.id}: ${m}`));
      return this.finishLoad(s, started, 'failure', build, error);
    }
  }

  private async loadUrl(s: SourceState): Promise<RefreshResult> {
    const started = performance.now();
    const stateDir = this.opts.stateDir ?? null;
    const copyPath = stateDir === null ? null : stateCopyPath(stateDir, this.name, s.id);
    // Read only while the source has no content: the copy is then both the fallback and the
    // source of validators for a conditional first request.
    let copy: StateCopy | null = null;
    if (s.content === null && copyPath !== null) {
      try {
        copy = await readStateCopy(copyPath, s.id);
      } catch (err) {
        this.reportError(
          new Error(`list ${this.name}: cannot read the copy ${copyPath}: ${describeError(err)}`),
        );
      }
    }

    const fromCopy = async (c: StateCopy): Promise<SourceBuild | null> => {
      const build = await this.build([c.body], s.label, null);
      if (build === null) return null;
      this.install(s, build, 'state_copy');
      s.etag = c.meta.etag;
      s.lastModified = c.meta.lastModified;
      s.persistedHash = build.hash;
      return build;
    };

    if (this.opts.offline) {
      if (copy === null) {
        if (s.content !== null) return this.finishLoad(s, started, 'not_modified', null, null);
        const error = new ListError(
          'LIST_FETCH_FAILED',
          `${s.label}: offline and no copy in ${stateDir === null ? 'state_dir (none is configured)' : stateDir}`,
        );
        return this.finishLoad(s, started, 'failure', null, error);
      }
      try {
        const build = await fromCopy(copy);
        return this.finishLoad(s, started, 'success', build, null);
      } catch (err) {
        const error = asListError(err, (m) => new ListError('LIST_READ', `${copyPath}: ${m}`));
        return this.finishLoad(s, started, 'failure', null, error);
      }
    }

    const validators = s.content !== null ? s : (copy?.meta ?? null);
    let build: SourceBuild | null = null;
    try {
      const outcome = await fetchList(s.id, {
        timeoutMs: this.opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
        maxBytes: this.maxBytes(),
        etag: validators?.etag ?? null,
        lastModified: validators?.lastModified ?? null,
        signal: this.abort.signal,
      });
      if (outcome.status === 'not_modified') {
        // Our validators came from the copy: the copy is current.
        if (s.content === null && copy !== null) {
          build = await fromCopy(copy);
          if (build !== null && build.hash !== copy.meta.sha256) {
            // The copy's body does not match what its validators describe: fetch it whole.
            s.etag = null;
            s.lastModified = null;
            s.again = true;
          }
        }
        return this.finishLoad(s, started, 'not_modified', build, null);
      }
      build = await this.build(outcome.chunks, s.label, s.content?.hash ?? null);
      const hash = build?.hash ?? s.content!.hash;
      if (build !== null) this.install(s, build, 'network');
      const validatorsChanged = outcome.etag !== s.etag || outcome.lastModified !== s.lastModified;
      s.etag = outcome.etag;
      s.lastModified = outcome.lastModified;
      if (copyPath !== null && (s.persistedHash !== hash || validatorsChanged)) {
        try {
          await writeStateCopy(
            copyPath,
            s.id,
            {
              url: s.label,
              etag: outcome.etag,
              lastModified: outcome.lastModified,
              sha256: hash,
              fetchedAt: new Date(this.now()).toISOString(),
            },
            outcome.chunks,
          );
          s.persistedHash = hash;
        } catch (err) {
          this.reportError(
            new Error(`list ${this.name}: cannot write the copy ${copyPath}: ${describeError(err)}`),
          );
        }
      }
      return this.finishLoad(s, started, build === null ? 'not_modified' : 'success', build, null);
    } catch (err) {
      const error = asListError(err, (m) => new ListError('LIST_FETCH_FAILED', `${s.label}: ${m}`));
      if (s.content === null && copy !== null && error.code !== 'LIST_CLOSED') {
        try {
          build = await fromCopy(copy);
        } catch (copyErr) {
          this.reportError(
            new Error(`list ${this.name}: the copy ${copyPath} is unusable too: ${describeError(copyErr)}`),
          );
        }
      }
      return this.finishLoad(s, started, 'failure', build, error);
    }
  }

  private scheduleRefresh(): void {
    const period = this.cfg.refreshMs;
    if (this.closed || this.opts.offline || period === null || !this.sources.some((s) => s.kind === 'url'))
      return;
    const retryMin = this.opts.retryMinMs ?? DEFAULT_RETRY_MIN_MS;
    const delay =
      this.consecutiveFailures > 0
        ? Math.min(period, retryMin * 2 ** Math.min(30, this.consecutiveFailures - 1))
        : period;
    this.arm(delay);
  }

  private arm(delayMs: number): void {
    const step = Math.min(delayMs, MAX_TIMER_MS);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      if (delayMs > step) {
        this.arm(delayMs - step);
        return;
      }
      void this.refresh().then(() => {
        if (this.timer === null) this.scheduleRefresh();
      });
    }, step);
    this.timer.unref();
  }
}
