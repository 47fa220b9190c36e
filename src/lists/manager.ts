// Owns every named list of the running process: one ManagedList per name however many policies
// use it, carried across config reloads when its sources are unchanged.
import { type ListLoaderOptions, type ListStats, ManagedList } from './list.js';
import type { ListConfig, ListsConfig } from './types.js';

function sameSources(a: ListConfig, b: ListConfig): boolean {
  return (
    a.format === b.format &&
    a.files.length === b.files.length &&
    a.urls.length === b.urls.length &&
    a.files.every((f, i) => f === b.files[i]) &&
    a.urls.every((u, i) => u === b.urls[i])
  );
}

/** A source that is not ready, for /readyz and `check`. */
export interface NotReady {
  readonly list: string;
  readonly source: string;
  readonly kind: 'file' | 'url';
  /** The last load's error, or null while the first load is under way. */
  readonly error: string | null;
}

/**
 * The lists of the process. {@link apply} takes each config generation's lists: a list whose
 * format and sources are unchanged is kept as it is (mode and refresh updated in place); a
 * changed one is replaced by a new list seeded with the content of the sources it shares with
 * the old (so an unchanged file or URL is not rebuilt, and a URL is asked conditionally); a
 * removed one is closed.
 *
 * Bound: holds exactly the lists of the last applied config.
 */
export class ListManager {
  private byName = new Map<string, ManagedList>();
  private stateDir: string | null = null;
  private closed = false;

  constructor(private readonly opts: Omit<ListLoaderOptions, 'stateDir'> = {}) {}

  /**
   * Makes `cfg` the lists in effect. Resolves once every new or replaced list has finished its
   * first load (loaded or failed: see {@link notReady}) and the lists it replaced are closed.
   * Lookups through {@link get} see a replaced list's new handle at once; its seeded content
   * serves until the first load swaps in fresh content.
   */
  async apply(cfg: ListsConfig): Promise<void> {
    if (this.closed) throw new Error('the list manager is closed');
    const names = new Set<string>();
    for (const config of cfg.lists) {
      if (names.has(config.name)) throw new Error(`list ${config.name} is defined twice`);
      names.add(config.name);
    }
    const next = new Map<string, ManagedList>();
    const starting: Promise<void>[] = [];
    const retired: ManagedList[] = [];
    const sameStateDir = cfg.stateDir === this.stateDir;
    for (const config of cfg.lists) {
      const old = this.byName.get(config.name);
      if (old !== undefined && sameStateDir && sameSources(old.config, config)) {
        old.reconfigure(config);
        next.set(config.name, old);
        continue;
      }
      const list = new ManagedList(
        config,
        { ...this.opts, stateDir: cfg.stateDir },
        old?.seeds(config, sameStateDir),
      );
      next.set(config.name, list);
      starting.push(list.start());
      if (old !== undefined) retired.push(old);
    }
    for (const [name, old] of this.byName) if (!next.has(name)) retired.push(old);
    this.byName = next;
    this.stateDir = cfg.stateDir;
    await Promise.all(starting);
    await Promise.all(retired.map((l) => l.close()));
  }

  get(name: string): ManagedList | undefined {
    return this.byName.get(name);
  }

  all(): ManagedList[] {
    return [...this.byName.values()];
  }

  /** Every list has content from every source. */
  get ready(): boolean {
    for (const list of this.byName.values()) if (!list.ready) return false;
    return true;
  }

  /** Sources never loaded: a file in this list makes `check` fail; a URL keeps /readyz at 503. */
  notReady(): NotReady[] {
    const out: NotReady[] = [];
    for (const list of this.byName.values()) {
      for (const s of list.stats().sources) {
        if (!s.loaded) out.push({ list: list.name, source: s.source, kind: s.kind, error: s.lastError });
      }
    }
    return out;
  }

  stats(): ListStats[] {
    return this.all().map((l) => l.stats());
  }

  async close(): Promise<void> {
    this.closed = true;
    const lists = this.all();
    this.byName = new Map();
    await Promise.all(lists.map((l) => l.close()));
  }
}

/**
 * Loads `cfg`'s lists once without network, timers or watches (files read; URLs from their
 * state_dir copies), for `explain`, `test` and `check`. Close the manager when done.
 */
export async function loadListsOffline(
  cfg: ListsConfig,
  opts: Omit<ListLoaderOptions, 'stateDir' | 'offline' | 'watch'> = {},
): Promise<ListManager> {
  const manager = new ListManager({ ...opts, offline: true, watch: false });
  await manager.apply(cfg);
  return manager;
}
