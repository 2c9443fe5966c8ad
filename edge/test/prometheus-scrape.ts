/**
 * Reads a `/metrics` text as Prometheus does, for tests: with the Prometheus project's own
 * parser (`prometheus_client.parser`, Python, in the whisper worker's dev venv), run once per text.
 * Not parse-prometheus-text-format from npm (used for the renderer's property test): it drops
 * the labels, `_sum` and `_count` of a labeled histogram (its flattenMetrics merges a family's
 * samples whatever their labels), and the runner's latency histograms are labeled by engine.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const python = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../stt-runner/whisper/.venv/bin/python");

const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
`;

export interface ScrapedSample {
  /** The sample's own name (`x_bucket`, `x_sum`, `x_count`, or a counter's `x_total`). */
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface ScrapedFamily {
  /** The family's name (a counter's without `_total`, as the parser gives it). */
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "unknown";
  readonly help: string;
  readonly samples: readonly ScrapedSample[];
}

/** The families of an exposition text; throws (with the parser's message) on one Prometheus would refuse. */
export function parseScrape(text: string): ScrapedFamily[] {
  return JSON.parse(execFileSync(python, ["-c", PARSE], { input: text, encoding: "utf8" })) as ScrapedFamily[];
}

const matches = (s: ScrapedSample, labels: Record<string, string>) =>
  Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** The family named `name` (a counter's `_total` may be given or not). */
export function scraped(families: readonly ScrapedFamily[], name: string): ScrapedFamily {
  const f = families.find((x) => x.name === name || x.name + "_total" === name);
  if (!f) throw new Error(`no family ${name}; there are ${families.map((x) => x.name).join(", ")}`);
  return f;
}

/** The value of the sample named `name` with `labels` (among others). */
export function valueOf(families: readonly ScrapedFamily[], name: string, labels: Record<string, string> = {}): number {
  for (const f of families) {
    const s = f.samples.find((x) => x.name === name && matches(x, labels));
    if (s) return s.value;
  }
  throw new Error(`no sample ${name} with ${JSON.stringify(labels)}`);
}

/** A histogram's count, sum and cumulative buckets for `labels`. */
export function histogramOf(
  families: readonly ScrapedFamily[],
  name: string,
  labels: Record<string, string> = {},
): { count: number; sum: number; buckets: Map<string, number> } {
  const f = scraped(families, name);
  if (f.type !== "histogram") throw new Error(`${name} is a ${f.type}, not a histogram`);
  const buckets = new Map<string, number>();
  for (const s of f.samples)
    if (s.name === `${name}_bucket` && matches(s, labels)) buckets.set(s.labels["le"]!, s.value);
  return { count: valueOf(families, `${name}_count`, labels), sum: valueOf(families, `${name}_sum`, labels), buckets };
}
