// Coarse timers for upstream attempts: one interval per set instead of a setTimeout per
// query. Attempt timeouts are hundreds of milliseconds; firing up to one tick late costs
// nothing, while a Timeout object, a timer-list insert and an unref per query did show in
// profiles of the pass-through path.

/** Tick length in ms: the most a timer fires late. */
export const WHEEL_TICK_MS = 5;

/**
 * One armed timer. Cancelling drops its target, so a settled query is not kept alive by
 * the bucket it sits in until that bucket's time comes (only this small object is).
 */
export class WheelTimer {
  constructor(
    public target: { onTimer(): void } | null,
    readonly fireAt: number,
  ) {}

  cancel(): void {
    this.target = null;
  }
}

/**
 * Timers grouped into buckets of WHEEL_TICK_MS. Bound: one entry per armed timer of a
 * live query (a query arms at most once per attempt); a bucket goes when it fires.
 */
export class TimerWheel {
  private readonly buckets = new Map<number, WheelTimer[]>();
  private interval: NodeJS.Timeout | null = null;

  constructor(private readonly now: () => number) {}

  /** Call `target.onTimer()` once `now() >= fireAt` (within one tick) unless cancelled first. */
  schedule(target: { onTimer(): void }, fireAt: number): WheelTimer {
    const timer = new WheelTimer(target, fireAt);
    this.insert(timer);
    return timer;
  }

  private insert(timer: WheelTimer): void {
    const slot = Math.floor(timer.fireAt / WHEEL_TICK_MS);
    const bucket = this.buckets.get(slot);
    if (bucket === undefined) this.buckets.set(slot, [timer]);
    else bucket.push(timer);
    if (this.interval === null) {
      this.interval = setInterval(this.tick, WHEEL_TICK_MS);
      this.interval.unref();
    }
  }

  private readonly tick = (): void => {
    const now = this.now();
    const current = Math.floor(now / WHEEL_TICK_MS);
    // Keys copied first: timers put back below land in a bucket for a later tick, not in
    // this loop.
    for (const slot of [...this.buckets.keys()]) {
      if (slot > current) continue;
      const bucket = this.buckets.get(slot)!;
      this.buckets.delete(slot);
      for (const timer of bucket) {
        const target = timer.target;
        if (target === null) continue;
        if (timer.fireAt > now) {
          this.insert(timer);
          continue;
        }
        timer.target = null;
        target.onTimer();
      }
    }
    if (this.buckets.size === 0 && this.interval !== null) {
      clearInterval(this.interval);
      this.interval = null;
    }
  };
}
