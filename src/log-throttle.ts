// Warnings about events that can repeat once per packet (socket errors under a flood): the
// first of each kind is logged at once, the rest of its interval are counted and logged as one
// line with the count when the interval ends.
import type { Logger } from './log.js';

/** Kinds tracked at once; further kinds share the kind 'other'. */
const MAX_KINDS = 32;

interface KindState {
  /** Occurrences since the last line. */
  count: number;
  /** Fields of the latest occurrence, logged with the count. */
  fields: Record<string, unknown>;
  readonly timer: NodeJS.Timeout;
}

export class ThrottledLog {
  /** kind → its interval's state; bounded by MAX_KINDS + 1. Absent = the next one logs at once. */
  private readonly kinds = new Map<string, KindState>();

  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
    readonly intervalMs = 10_000,
  ) {}

  /**
   * Log `fields` under `kind` (e.g. an error code): at once when the kind was quiet for an
   * interval, else counted into the line that closes the interval.
   */
  warn(kind: string, fields: Record<string, unknown>): void {
    let key = kind;
    if (!this.kinds.has(key) && this.kinds.size >= MAX_KINDS) key = 'other';
    const state = this.kinds.get(key);
    if (state !== undefined) {
      state.count++;
      state.fields = fields;
      return;
    }
    this.logger.warn({ ...fields, kind: key, count: 1 }, this.msg);
    const timer = setTimeout(() => this.endInterval(key), this.intervalMs);
    timer.unref();
    this.kinds.set(key, { count: 0, fields, timer });
  }

  private endInterval(key: string): void {
    const state = this.kinds.get(key);
    if (state === undefined) return;
    this.kinds.delete(key);
    if (state.count === 0) return;
    // Still happening: one line for the interval, and a new interval to count the next ones in.
    this.logger.warn(
      { ...state.fields, kind: key, count: state.count, interval_ms: this.intervalMs },
      `${this.msg} (repeated)`,
    );
    const timer = setTimeout(() => this.endInterval(key), this.intervalMs);
    timer.unref();
    this.kinds.set(key, { count: 0, fields: state.fields, timer });
  }

  /** Log every count still open and stop the timers (the owner is closing). */
  flush(): void {
    for (const [key, state] of [...this.kinds]) {
      clearTimeout(state.timer);
      this.kinds.delete(key);
      if (state.count > 0) {
        this.logger.warn(
          { ...state.fields, kind: key, count: state.count, interval_ms: this.intervalMs },
          `${this.msg} (repeated)`,
        );
      }
    }
  }
}
