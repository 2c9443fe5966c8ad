/**
 * The GO check's limits, each taken from the user's playbook (section G, with A, B, C and E
 * where G refers to them). `--limit name=value` overrides one for a run.
 */

/** At most `max`; within `min..max`; or exactly `value`. */
export type Limit =
  | { readonly kind: "max"; readonly max: number }
  | { readonly kind: "range"; readonly min: number; readonly max: number }
  | { readonly kind: "equals"; readonly value: string | boolean };

export const CHECK_NAMES = [
  "greeting_latency",
  "first_partial",
  "partial_cadence",
  "feed_cadence",
  "edge_handler_time",
  "buffering",
  "table_decode",
  "punctuation_off",
] as const;

export type CheckName = (typeof CHECK_NAMES)[number];

export interface CheckSpec {
  readonly title: string;
  readonly unit: string;
  readonly limit: Limit;
  /** Where the limit comes from, for `--help`-style listings and docs/benchmarks.md. */
  readonly source: string;
}

export const DEFAULT_CHECKS: Readonly<Record<CheckName, CheckSpec>> = {
  greeting_latency: {
    title: "greeting latency",
    unit: "ms",
    limit: { kind: "max", max: 800 },
    source: "G.1: greeting within 500-800 ms of the call starting",
  },
  first_partial: {
    title: "first partial after speech onset",
    unit: "ms",
    limit: { kind: "max", max: 1200 },
    source: "G.2 and C: first partial ~0.7-1.2 s is normal (not held to 300 ms)",
  },
  partial_cadence: {
    title: "partial cadence (median gap)",
    unit: "ms",
    limit: { kind: "range", min: 150, max: 250 },
    source: "G.2-3 and E: partials every ~200 ms, debounced to 150-250 ms",
  },
  feed_cadence: {
    title: "feed cadence to the engine (median gap)",
    unit: "ms",
    limit: { kind: "range", min: 80, max: 200 },
    source: "G.3 and A: feed to STT every 100 ms, batches of 100-200 ms (80: one 20 ms frame of jitter)",
  },
  edge_handler_time: {
    title: "edge handler time per frame (mean)",
    unit: "ms",
    limit: { kind: "max", max: 2 },
    source: 'G.3: "WS in -> Queue" < 2 ms per frame',
  },
  buffering: {
    title: "buffering before the engine (p99)",
    unit: "ms",
    limit: { kind: "max", max: 250 },
    source: "G.4: buffering must not be too large (> 250 ms)",
  },
  table_decode: {
    title: "mu-law decode per frame (mean)",
    unit: "ms",
    limit: { kind: "max", max: 0.25 },
    source: "G.4 and A: mu-law -> PCM by lookup table, O(1) per sample (0.25 ms: an eighth of G.3's 2 ms a frame)",
  },
  punctuation_off: {
    title: "automatic punctuation during partials",
    unit: "",
    limit: { kind: "equals", value: false },
    source: "G.4 and B: punctuation off in the fast profile, the final is punctuated afterwards",
  },
};

/** Whether `value` meets `limit`; a value that was not measured (null) never does. */
export function meets(value: number | string | boolean | null, limit: Limit): boolean {
  if (value === null) return false;
  switch (limit.kind) {
    case "max":
      return typeof value === "number" && value <= limit.max;
    case "range":
      return typeof value === "number" && value >= limit.min && value <= limit.max;
    case "equals":
      return value === limit.value;
  }
}

/** A limit as the report carries it: a number (at most), [min, max], or the value expected. */
export type LimitJson = number | [number, number] | string | boolean;

export function limitJson(limit: Limit): LimitJson {
  switch (limit.kind) {
    case "max":
      return limit.max;
    case "range":
      return [limit.min, limit.max];
    case "equals":
      return limit.value;
  }
}

/** A report's limit for people: `<= 800 ms`, `150..250 ms`, `= false`. */
export function limitText(limit: LimitJson, unit: string): string {
  const u = unit ? ` ${unit}` : "";
  if (Array.isArray(limit)) return `${limit[0]}..${limit[1]}${u}`;
  return typeof limit === "number" ? `<= ${limit}${u}` : `= ${String(limit)}`;
}

/**
 * Parses one `--limit name=value` override: `800` (at most), `150..250` (range), or for the
 * equality checks the expected value (`false`). Returns an error message when it is not one.
 */
export function parseLimitOverride(text: string): { name: CheckName; limit: Limit } | { error: string } {
  const eq = text.indexOf("=");
  const name = text.slice(0, eq) as CheckName;
  const raw = text.slice(eq + 1).trim();
  if (eq < 0 || !CHECK_NAMES.includes(name)) {
    return { error: `--limit ${JSON.stringify(text)}: expected NAME=VALUE with NAME one of ${CHECK_NAMES.join(", ")}` };
  }
  const kind = DEFAULT_CHECKS[name].limit.kind;
  if (kind === "equals") {
    const value = raw === "true" ? true : raw === "false" ? false : raw;
    return { name, limit: { kind, value } };
  }
  const range = /^(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)$/.exec(raw);
  if (range) {
    const [min, max] = [Number(range[1]), Number(range[2])];
    if (Number.isFinite(min) && Number.isFinite(max) && min <= max) return { name, limit: { kind: "range", min, max } };
  } else if (raw !== "" && Number.isFinite(Number(raw))) {
    return { name, limit: { kind: "max", max: Number(raw) } };
  }
  return { error: `--limit ${JSON.stringify(text)}: expected a number (at most) or MIN..MAX` };
}
