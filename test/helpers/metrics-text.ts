// Reads the gateway's Prometheus text from outside the process: one scrape, and the sum of the
// samples of a metric whose labels match, so tests and scripts share one small parser.
import { httpGet } from './http.js';

/** GET /metrics on the admin port; throws on a status other than 200. */
export async function scrapeMetrics(adminPort: number, timeoutMs = 5000): Promise<string> {
  const reply = await httpGet(adminPort, '/metrics', '127.0.0.1', timeoutMs);
  if (reply.status !== 200) throw new Error(`GET /metrics: status ${reply.status}`);
  return reply.body;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
  return labels;
}

/**
 * Sum of the samples of `name` whose labels include every pair of `match`; null when the text
 * has no such sample. Histogram series are named in full (`x_bucket`, `x_sum`, `x_count`).
 */
export function metricValue(text: string, name: string, match: Record<string, string> = {}): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    let valueText: string;
    if (rest.startsWith('{')) {
      const close = rest.lastIndexOf('}');
      labels = parseLabels(rest.slice(1, close));
      valueText = rest.slice(close + 1).trim();
    } else if (rest.startsWith(' ')) {
      valueText = rest.trim();
    } else {
      continue; // another metric sharing the prefix
    }
    if (!Object.entries(match).every(([k, v]) => labels[k] === v)) continue;
    const value = Number(valueText.split(' ')[0]);
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

/** Every sample of `name` as label value of `by` → value (summed over the other labels). */
export function metricBy(text: string, name: string, by: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const key = parseLabels(line.slice(name.length + 1, close))[by];
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(' ')[0],
    );
    if (key !== undefined && Number.isFinite(value)) out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}
