/**
 * A window of the most recent latency samples (ms) with exact percentiles over it. Bounded
 * memory; recording is O(1) and allocation-free; percentiles sort a copy on demand.
 */
export class LatencyWindow {
  private readonly values: Float64Array;
  private next = 0;
  /** Samples recorded in all (not only those still in the window). */
  count = 0;
  max = 0;
  sum = 0;

  constructor(capacity = 4096) {
    this.values = new Float64Array(capacity);
  }

  record(ms: number): void {
    this.values[this.next] = ms;
    this.next = (this.next + 1) % this.values.length;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  /** The q-quantile (0..1) of the window by nearest rank, or undefined when empty. */
  percentile(q: number): number | undefined {
    const n = Math.min(this.count, this.values.length);
    if (n === 0) return undefined;
    const sorted = this.values.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      p50: this.percentile(0.5) ?? null,
      p99: this.percentile(0.99) ?? null,
      max: this.count ? this.max : null,
      mean: this.count ? this.sum / this.count : null,
    };
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

/** Nearest-rank percentile of a plain list (benchmarks). */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * Counts of latencies by whole millisecond (0..capMs, larger ones in the cap bucket). Sums
 * across calls exactly, which percentiles do not: benchmarks merge these.
 */
export type MsHistogram = Record<string, number>;

export function recordMs(h: MsHistogram, ms: number, capMs = 10_000): void {
  const bucket = String(Math.min(capMs, Math.max(0, Math.round(ms))));
  h[bucket] = (h[bucket] ?? 0) + 1;
}

export function mergeMs(into: MsHistogram, from: MsHistogram): MsHistogram {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

/** Nearest-rank q-quantile of a histogram, or null when empty. */
export function histogramPercentile(h: MsHistogram, q: number): number | null {
  const buckets = Object.entries(h)
    .map(([k, v]) => [Number(k), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((n, [, v]) => n + v, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [ms, v] of buckets) {
    seen += v;
    if (seen >= rank) return ms;
  }
  return buckets[buckets.length - 1]![0];
}
