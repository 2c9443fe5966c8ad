/**
 * The Prometheus text exposition format (version 0.0.4) for counters and gauges: families with
 * HELP and TYPE lines, samples with escaped label values. Pure.
 *
 * Written by hand for the edge: prom-client needs Node's `util` and `cluster`, which a Worker has
 * only with the `nodejs_compat` flag (checked: with it prom-client bundles and runs on workerd, at
 * ~180 KiB more per isolate), and the edge's numbers are totals a Durable Object keeps, not live
 * instruments to register; the one Workers-native registry on npm (promjs-plus, a fork of the
 * unmaintained promjs) keeps every observation in memory and does not escape label values. The
 * runner, on Node, uses prom-client itself; a test checks this against prom-client's output.
 */

export type MetricType = "counter" | "gauge";

export interface MetricSample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; a counter's ends in `_total` by convention. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly MetricSample[];
}

/** The content type of `renderExposition`'s text. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A sample value as the format spells it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

const escapeHelp = (s: string): string => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabelValue = (s: string): string => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/**
 * The exposition text of `families` (in the given order; a family with no samples still has its
 * HELP and TYPE). Throws on a name the format does not allow: names are the code's, not input's.
 */
export function renderExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new Error(`metric name ${JSON.stringify(f.name)} is not allowed`);
    if (seen.has(f.name)) throw new Error(`metric ${f.name} appears twice`);
    seen.add(f.name);
    // no HELP line for no help: some parsers refuse `# HELP name` with nothing after it
    if (f.help !== "") lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      for (const [k] of labels) {
        if (!LABEL_NAME.test(k) || k.startsWith("__"))
          throw new Error(`label name ${JSON.stringify(k)} is not allowed`);
      }
      const text = labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",");
      lines.push(`${f.name}${text ? `{${text}}` : ""} ${formatValue(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}
