/**
 * The Prometheus text format as a scraper reads it, for tests: parse-prometheus-text-format
 * (a port of the Prometheus Python client's parser, output shaped like prom2json's), typed.
 */
import { createRequire } from "node:module";

export interface ParsedSample {
  readonly labels?: Record<string, string>;
  /** Counters and gauges. */
  readonly value?: string;
  /** Histograms: cumulative counts by upper bound. */
  readonly buckets?: Record<string, string>;
  readonly count?: string;
  readonly sum?: string;
}

export interface ParsedFamily {
  readonly name: string;
  readonly help: string;
  readonly type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  readonly metrics: readonly ParsedSample[];
}

export const parsePrometheusText = createRequire(import.meta.url)("parse-prometheus-text-format") as (
  text: string,
) => ParsedFamily[];

/** The family `name`, or a failure naming the families there are. */
export function family(families: readonly ParsedFamily[], name: string): ParsedFamily {
  const f = families.find((x) => x.name === name);
  if (!f) throw new Error(`no family ${name}; there are ${families.map((x) => x.name).join(", ")}`);
  return f;
}

/** The value of the sample of `name` whose labels include `labels`, as a number. */
export function sampleValue(
  families: readonly ParsedFamily[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = family(families, name);
  const s = f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!s) throw new Error(`no sample of ${name} with ${JSON.stringify(labels)}`);
  return Number(s.value ?? s.count);
}
