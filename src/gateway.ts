// The composition root: turns a config into a running generation (policy table, stage
// chains, upstream sets), binds the listeners, swaps generations on reload and shuts
// down gracefully.
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { createMetricsRegistry } from './admin/metrics.js';
import { AdminServer, type Readiness } from './admin/server.js';
import { type ConfigProblem, parseConfig } from './config/load.js';
import type { GatewayConfig } from './config/types.js';
import { type ConfigWatcher, watchConfigFile } from './config/watch.js';
import { ListenerSet } from './listeners/set.js';
import type { Logger } from './log.js';
import { Counters } from './metrics/counters.js';
import { buildGeneration, type CarriedState, type Generation } from './pipeline/build.js';
import { QueryEntry } from './pipeline/entry.js';
import { reloadSummary } from './policy/diff.js';
import { UpstreamHub } from './upstream/hub.js';

export interface GatewayOptions {
  readonly logger: Logger;
  /** The file the config came from; enables reload() and the file watch. */
  readonly configPath?: string;
  /** Watch `configPath` for changes (default true when a path is given). */
  readonly watch?: boolean;
  readonly now?: () => number;
  /**
   * Set when this process is one of `workerCount` cluster workers (see src/workers/): the
   * primary owns the admin server, the file watch and the reload summary, so the worker
   * runs none of them, logs its own reload lines at debug, says "worker ready" rather than
   * "gateway ready", and divides every rate limit by the count.
   */
  readonly workerCount?: number;
}

export type ReloadResult =
  | { result: 'success'; hash: string; changes: ReloadChanges; durationMs: number }
  | { result: 'unchanged'; hash: string }
  | { result: 'failure'; problems: ConfigProblem[] | null; error: string };

export interface ReloadChanges {
  listeners: { added: string[]; removed: string[] };
  upstreams: { added: string[]; removed: string[]; changed: string[] };
  policies: { added: string[]; removed: string[]; changed: string[] };
  /** What changes in effect, as `dns-tool diff` prints it (bounded; see reloadSummary). */
  summary: string[];
}

export class Gateway {
  readonly counters = new Counters();
  readonly registry: Registry;
  private readonly logger: Logger;
  private readonly hub: UpstreamHub;
  private readonly entry: QueryEntry;
  private readonly listeners: ListenerSet;
  private readonly now: () => number;
  private generation!: Generation;
  private admin: AdminServer | null = null;
  private watcher: ConfigWatcher | null = null;
  private reloading: Promise<ReloadResult> | null = null;
  private reloadAgain = false;
  private stopped = false;
  private ready = false;
  /** A worker's own reload lines are detail: the primary logs the summary. */
  private readonly reloadLogLevel: 'info' | 'debug';

  private constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger;
    this.now = options.now ?? (() => performance.now());
    this.reloadLogLevel = options.workerCount === undefined ? 'info' : 'debug';
    this.hub = new UpstreamHub({
      logger: this.logger.child({ component: 'upstream' }),
      counters: this.counters,
    });
    this.entry = new QueryEntry(() => this.generation, this.counters, this.logger);
    this.listeners = new ListenerSet(this.entry, () => this.generation.config.limits, this.logger);
    this.registry = createMetricsRegistry(this.counters);
  }

  /** Build the first generation, bind every listener, start admin and the watch. */
  static async start(config: GatewayConfig, options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(options);
    const carried: CarriedState = { limiters: new Map(), caches: new Map() };
    gw.generation = buildGeneration(config, {
      counters: gw.counters,
      logger: gw.logger,
      hub: gw.hub,
      carried,
      now: gw.now,
      rateDivisor: options.workerCount ?? 1,
    });
    gw.logger.level = config.log.level;
    gw.warmUsedSets();
    try {
      await gw.listeners.open(config.listeners);
      if (options.workerCount === undefined) await gw.syncAdmin(null, config);
      if (options.configPath && options.watch !== false && options.workerCount === undefined) {
        gw.watcher = await watchConfigFile(options.configPath, () => void gw.reload(), {
          onError: (err) => gw.logger.warn({ err }, 'config watch error'),
        });
        // The watch's baseline is the file as it is now; an edit made between loading and
        // watching would go unseen, so compare once (a no-op when the hash is unchanged).
        void gw.reload();
      }
    } catch (err) {
      await gw.stop(0);
      throw err;
    }
    gw.ready = true;
    gw.logger.info(
      {
        listeners: gw.listeners.list(),
        admin: gw.admin ? gw.adminAddress() : null,
        hash: config.hash,
        source: config.source,
      },
      options.workerCount === undefined ? 'gateway ready' : 'worker ready',
    );
    return gw;
  }

  get config(): GatewayConfig {
    return this.generation.config;
  }

  boundListeners() {
    return this.listeners.list();
  }

  adminAddress(): { address: string; port: number } | null {
    return this.admin && this.generation.config.admin
      ? { address: this.generation.config.admin.address, port: this.admin.port }
      : null;
  }

  get inFlight(): number {
    return this.entry.inFlight;
  }

  /** Connect to the used upstream servers now, so readiness reflects real verified handshakes. */
  private warmUsedSets(): void {
    for (const name of usedSets(this.generation.config)) this.generation.upstreamSets.get(name)?.warm();
  }

  readiness(): Readiness {
    if (!this.ready || this.stopped) return { ready: false, reason: this.stopped ? 'stopping' : 'starting' };
    const down: string[] = [];
    for (const name of usedSets(this.generation.config)) {
      const set = this.generation.upstreamSets.get(name);
      let reachable = false;
      for (const server of set?.servers ?? []) {
        // Without traffic nothing notices an upstream that went away after its connections
        // closed, so each check reconnects an up server that has none; a failure marks it
        // down (and starts its probes) in time for the next check.
        if (server.up && !server.state().connected) server.warm();
        if (server.up && server.verified) reachable = true;
      }
      if (!reachable) down.push(name);
    }
    if (down.length > 0)
      return { ready: false, reason: `no verified upstream server in set(s): ${down.join(', ')}` };
    return { ready: true };
  }

  /**
   * Re-read the config file and, when it is valid and different, swap to a new
   * generation. Concurrent calls are coalesced: at most one reload runs, and a call
   * that arrives during it schedules exactly one more.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    const run = async (): Promise<ReloadResult> => {
      let result: ReloadResult;
      do {
        this.reloadAgain = false;
        result = await this.reloadOnce();
      } while (this.reloadAgain && !this.stopped);
      return result;
    };
    this.reloading = run().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<ReloadResult> {
    const path = this.options.configPath;
    if (!path || this.stopped)
      return { result: 'failure', problems: null, error: 'no config file to reload' };
    const started = performance.now();
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      return this.reloadFailed(null, `cannot read ${path}: ${(err as Error).message}`, started);
    }
    // Parsed before comparing: the hash covers the ca_file contents too, so a rotated CA
    // bundle is picked up by SIGHUP even when the YAML text is the same.
    const parsed = parseConfig(text, path, dirname(path));
    if ('problems' in parsed) return this.reloadFailed(parsed.problems, 'invalid config', started);
    const hash = parsed.config.hash;
    if (hash === this.generation.config.hash) {
      // Still one line per reload: a SIGHUP that changes nothing should say so.
      this.logger[this.reloadLogLevel](
        { result: 'unchanged', hash, duration_ms: msSince(started) },
        'config unchanged',
      );
      return { result: 'unchanged', hash };
    }
    return this.apply(parsed.config, started);
  }

  /** Swap to `config` (already validated). Used by reload and by tests. */
  async apply(config: GatewayConfig, started = performance.now()): Promise<ReloadResult> {
    const old = this.generation;
    let next: Generation;
    try {
      next = buildGeneration(config, {
        counters: this.counters,
        logger: this.logger,
        hub: this.hub,
        carried: old.carried,
        now: this.now,
        rateDivisor: this.options.workerCount ?? 1,
      });
    } catch (err) {
      await this.hub.retain(old.upstreamSets.values());
      return this.reloadFailed(null, `cannot build config: ${(err as Error).message}`, started);
    }
    let opened: Awaited<ReturnType<ListenerSet['open']>>;
    try {
      opened = await this.listeners.open(config.listeners);
    } catch (err) {
      // New upstream servers built for `next` are released; the old generation stays whole.
      await this.hub.retain(old.upstreamSets.values());
      return this.reloadFailed(null, (err as Error).message, started);
    }
    // The swap: one reference. Queries already running hold their own policy objects
    // and finish on the generation they started with.
    this.generation = next;
    this.logger.level = config.log.level;
    this.warmUsedSets();
    await opened.commit();
    if (this.options.workerCount === undefined) {
      await this.syncAdmin(old.config, config).catch((err) =>
        this.logger.error({ err }, 'admin server could not be moved; metrics unavailable until next reload'),
      );
      if (old.config.workers !== config.workers) {
        this.logger.warn(
          { running: old.config.workers, configured: config.workers },
          'workers changed: takes a restart; the rest of the new config applies now',
        );
      }
    }
    void this.hub.retain(next.upstreamSets.values());
    this.counters.reloads.success++;
    const changes = diffConfigs(old.config, config, opened.added, opened.removed);
    const durationMs = msSince(started);
    this.logger[this.reloadLogLevel](
      { result: 'success', hash: config.hash, changes, duration_ms: durationMs },
      'config reloaded',
    );
    return { result: 'success', hash: config.hash, changes, durationMs };
  }

  private reloadFailed(
    problems: ConfigProblem[] | null,
    error: string,
    started = performance.now(),
  ): ReloadResult {
    this.counters.reloads.failure++;
    const path = this.options.configPath ?? '<config>';
    const lines = problems?.map((p) => `${path}:${p.line}:${p.col}: ${p.message}`) ?? [];
    this.logger.error(
      {
        result: 'failure',
        error,
        problems: lines,
        hash: this.generation.config.hash,
        duration_ms: msSince(started),
      },
      'config reload refused; previous config still serving',
    );
    return { result: 'failure', problems, error };
  }

  private async syncAdmin(before: GatewayConfig | null, after: GatewayConfig): Promise<void> {
    const same =
      before?.admin?.address === after.admin?.address &&
      before?.admin?.port === after.admin?.port &&
      this.admin;
    if (same) return;
    if (this.admin) {
      await this.admin.close();
      this.admin = null;
    }
    if (!after.admin) return;
    const admin = new AdminServer({
      address: after.admin.address,
      port: after.admin.port,
      registry: this.registry,
      readiness: () => this.readiness(),
      logger: this.logger.child({ component: 'admin' }),
    });
    await admin.listen();
    this.admin = admin;
  }

  /**
   * Shut down in order: stop taking queries (no new TCP connections, open ones read no
   * further, UDP datagrams dropped unread) while every socket stays open; answer the queries
   * already taken, each from the socket it came in on (at most `graceMs` in all); close the
   * sockets; then close upstream connections. Idempotent.
   */
  async stop(graceMs = this.generation?.config.limits.timeoutMs ?? 0): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.watcher?.close();
    // A reload past its own stopped check would otherwise bind listeners and open upstream
    // connections after they were closed here, and keep the process alive.
    await this.reloading?.catch(() => undefined);
    const deadline = Date.now() + graceMs;
    await this.listeners.close(graceMs);
    while (this.entry.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.hub.close(Math.max(0, deadline - Date.now()));
    await this.admin?.close();
    this.admin = null;
  }
}

/** Milliseconds since `started` (performance.now), to the microsecond. */
function msSince(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

/** Upstream sets some policy forwards to (an allowing one, or any in audit mode): the ones readiness waits for. */
function usedSets(config: GatewayConfig): string[] {
  const used = new Set<string>();
  for (const p of config.policies) if (p.action === 'allow' || p.mode === 'audit') used.add(p.upstream);
  return [...used];
}

function diffConfigs(
  a: GatewayConfig,
  b: GatewayConfig,
  listenersAdded: string[],
  listenersRemoved: string[],
): ReloadChanges {
  return {
    listeners: { added: listenersAdded, removed: listenersRemoved },
    upstreams: diffNamed(
      new Map([...a.upstreams].map(([k, v]) => [k, JSON.stringify(v)])),
      new Map([...b.upstreams].map(([k, v]) => [k, JSON.stringify(v)])),
    ),
    policies: diffNamed(
      new Map(a.policies.map((p) => [p.name, JSON.stringify(p)])),
      new Map(b.policies.map((p) => [p.name, JSON.stringify(p)])),
    ),
    summary: reloadSummary(a, b),
  };
}

function diffNamed(a: Map<string, string>, b: Map<string, string>) {
  const added = [...b.keys()].filter((k) => !a.has(k));
  const removed = [...a.keys()].filter((k) => !b.has(k));
  const changed = [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k));
  return { added, removed, changed };
}
