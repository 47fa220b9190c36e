// Owns the primary's /metrics: on each scrape every worker's counters are gathered and
// summed with those of workers that died, plus the primary's own worker and reload counts.
import { Counter, Gauge, Registry } from 'prom-client';
import { createMetricsRegistry } from '../admin/metrics.js';
import { Counters } from '../metrics/counters.js';
import { addSnapshot, clearCounters, countsOnly, snapshotCounters } from './counters-snapshot.js';
import type { WorkerRequests } from './requests.js';
import type { Slot } from './slot.js';

/** A scrape waits this long for each worker's counters; a late worker's last snapshot is used. */
const SNAPSHOT_TIMEOUT_MS = 1000;

export interface MergedMetricsSources {
  readonly slots: readonly Slot[];
  readonly requests: WorkerRequests;
  /** Workers started again after one died. */
  restarts(): number;
  /** Reloads of the host, each counted once whatever the number of workers. */
  reloads(): { readonly success: number; readonly failure: number };
}

export class MergedMetrics {
  /** The registry the admin server serves; every scrape first gathers the workers' counters. */
  readonly registry: Registry;
  /** What this process reports: workers' counters summed, plus reloads counted here once. */
  private readonly merged = new Counters();
  /** Counts of workers that died, so a restart never makes a total go down. */
  private readonly retired = new Counters();
  private refreshing: Promise<void> | null = null;

  constructor(private readonly sources: MergedMetricsSources) {
    const inner = createMetricsRegistry(this.merged);
    new Gauge({
      name: 'dns_tool_workers',
      help: 'Worker processes serving DNS right now (the `workers` setting when all are up).',
      registers: [inner],
      collect() {
        this.set(sources.slots.filter((s) => s.state === 'running').length);
      },
    });
    new Counter({
      name: 'dns_tool_worker_restarts_total',
      help: 'Worker processes started again after one died.',
      registers: [inner],
      collect() {
        this.reset();
        this.inc(sources.restarts());
      },
    });
    this.registry = new RefreshingRegistry(inner, () => this.refresh());
  }

  /**
   * The slot's worker died. Its counts stay in the totals (Prometheus must never see a
   * counter go down); its gauges go with it: a dead worker's certificate expiry describes
   * a connection that no longer exists, and kept as the minimum it would hold an expiry
   * alert up after the certificate was renewed.
   */
  retire(slot: Slot): void {
    if (slot.snapshot !== null) addSnapshot(this.retired, countsOnly(slot.snapshot));
    slot.snapshot = null;
  }

  /** Collects every worker's counters into `merged`; concurrent scrapes share one round. */
  private refresh(): Promise<void> {
    const { slots, requests } = this.sources;
    this.refreshing ??= (async () => {
      await Promise.all(
        slots.map(async (slot) => {
          const answer = await requests.ask(
            slot,
            (id) => ({ type: 'dns-tool:snapshot', id }),
            SNAPSHOT_TIMEOUT_MS,
          );
          if (answer?.type === 'dns-tool:snapshot') slot.snapshot = answer.counters;
        }),
      );
      clearCounters(this.merged);
      addSnapshot(this.merged, snapshotCounters(this.retired));
      for (const slot of slots) if (slot.snapshot !== null) addSnapshot(this.merged, slot.snapshot);
      // Each worker counts the reloads it applied; the host did one reload, counted here.
      const reloads = this.sources.reloads();
      this.merged.reloads.success = reloads.success;
      this.merged.reloads.failure = reloads.failure;
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }
}

/** The admin server's registry: every scrape first gathers the workers' counters. */
class RefreshingRegistry extends Registry {
  constructor(
    private readonly inner: Registry,
    private readonly refresh: () => Promise<void>,
  ) {
    super();
  }

  override async metrics(): Promise<string> {
    await this.refresh();
    return this.inner.metrics();
  }
}
