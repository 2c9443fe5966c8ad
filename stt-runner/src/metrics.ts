/** Prometheus text exposition of the runner's counters and timings (no client library needed for this little). */
export class Metrics {
  private readonly feedBucketsMs = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  private readonly feedCounts = new Array<number>(this.feedBucketsMs.length + 1).fill(0);
  private feedSumMs = 0;
  private feedCount = 0;

  /** Time the engine's feed() took for one block, ms. */
  observeFeed(ms: number): void {
    let i = 0;
    while (i < this.feedBucketsMs.length && ms > this.feedBucketsMs[i]!) i++;
    this.feedCounts[i]!++;
    this.feedSumMs += ms;
    this.feedCount++;
  }

  /**
   * The exposition: `counters` one series each (camelCase names become `ozen_runner_snake_case`),
   * `labelled` one metric each with a series per label value (e.g. refusals by reason).
   */
  render(
    counters: Record<string, number>,
    labelled: Record<string, { label: string; values: Record<string, number> }> = {},
  ): string {
    const lines: string[] = [];
    const metricName = (k: string) => "ozen_runner_" + k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
    for (const [k, v] of Object.entries(counters)) {
      const name = metricName(k);
      lines.push(
        `# TYPE ${name} ${/active|draining|_up$|_open$|open_sockets/.test(name) ? "gauge" : "counter"}`,
        `${name} ${v}`,
      );
    }
    for (const [k, { label, values }] of Object.entries(labelled)) {
      const name = metricName(k);
      lines.push(`# TYPE ${name} counter`);
      for (const [value, n] of Object.entries(values)) lines.push(`${name}{${label}="${value}"} ${n}`);
    }
    lines.push("# TYPE ozen_runner_feed_seconds histogram");
    let cumulative = 0;
    this.feedBucketsMs.forEach((b, i) => {
      cumulative += this.feedCounts[i]!;
      lines.push(`ozen_runner_feed_seconds_bucket{le="${b / 1000}"} ${cumulative}`);
    });
    lines.push(`ozen_runner_feed_seconds_bucket{le="+Inf"} ${this.feedCount}`);
    lines.push(
      `ozen_runner_feed_seconds_sum ${this.feedSumMs / 1000}`,
      `ozen_runner_feed_seconds_count ${this.feedCount}`,
    );
    return lines.join("\n") + "\n";
  }
}
