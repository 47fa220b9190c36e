// Resident memory of another process, sampled from /proc (Linux), for fuzz and soak runs that
// must show memory stays bounded.
import { readFileSync } from 'node:fs';

/** VmRSS of `pid` in bytes, or null when the process is gone (or /proc is unavailable). */
export function rssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export interface RssSample {
  /** ms since the sampler started. */
  readonly at: number;
  readonly bytes: number;
}

/**
 * Samples a process's RSS every `intervalMs`. Keeps at most MAX_SAMPLES samples (older ones are
 * thinned by dropping every other one), so a long soak cannot grow the list without bound.
 */
export class RssSampler {
  static readonly MAX_SAMPLES = 4096;
  readonly samples: RssSample[] = [];
  min = Number.POSITIVE_INFINITY;
  max = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly started = Date.now();

  constructor(
    private readonly pid: number,
    intervalMs = 250,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): number | null {
    const bytes = rssBytes(this.pid);
    if (bytes === null) return null;
    if (bytes < this.min) this.min = bytes;
    if (bytes > this.max) this.max = bytes;
    this.samples.push({ at: Date.now() - this.started, bytes });
    if (this.samples.length > RssSampler.MAX_SAMPLES) {
      for (let i = 1; i < this.samples.length; i++) this.samples.splice(i, 1);
    }
    return bytes;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
