/**
 * The GO check's verdicts from what one simulated call measured: pure, no I/O, so each rule is
 * tested with plain values. Every check says its value, limit, unit and pass, and a note saying
 * why when it could not be measured or where the figure comes from.
 */
import { percentile } from "@ozen/shared";
import type { CallStartedEvent, LatencySummary } from "@ozen/shared";
import { CHECK_NAMES, DEFAULT_CHECKS, limitJson, meets } from "./limits.js";
import type { CheckName, Limit, LimitJson } from "./limits.js";

/** A partial as the check saw it. */
export interface ObservedPartial {
  readonly utteranceId: string;
  /** The runner's clock when it emitted the partial (one clock for every partial of the call), ms. */
  readonly wallMs: number;
  /** The check's clock (performance.now) when the partial reached it, ms. */
  readonly receivedAtMs: number;
}

/**
 * The fields of the edge's call record (`GET /calls/{CallSid}/stats`, edge/src/call/stats.ts) the
 * check reads. Declared here rather than imported: the check talks to whatever edge is
 * deployed, and an older one may lack any of them, so every one is optional.
 */
export interface EdgeCallStats {
  readonly state?: string;
  readonly framesIn?: number;
  readonly handlerMsTotal?: number;
  readonly handlerMsMax?: number;
  readonly decodeMsTotal?: number;
  readonly blockMs?: number;
  readonly blockIntervalMs?: LatencySummary;
  readonly blockHeldMs?: LatencySummary;
  readonly relay?: { readonly blocksReplayed?: number };
}

export interface CallMeasurements {
  /** The voice webhook sent (the call answered) -> first greeting media back, ms (the check's clock). */
  readonly answerToGreetingMs: number | null;
  /** Of that, the stream's `start` sent -> first greeting media back, ms. */
  readonly greetingMs: number | null;
  /** The check's clock when the frame holding speech onset was sent; null when the audio has no speech. */
  readonly onsetSentAtMs: number | null;
  readonly partials: readonly ObservedPartial[];
  readonly started: CallStartedEvent | undefined;
  /** How events were read (`websocket`, `polling every 50 ms`), for the notes. */
  readonly eventsVia: string;
  /** Why events could not be read, when they could not. */
  readonly eventsError?: string;
  readonly stats: EdgeCallStats | undefined;
  /** Why the edge's stats could not be read, when they could not. */
  readonly statsError?: string;
}

export interface CheckResult {
  readonly name: CheckName;
  readonly value: number | string | boolean | null;
  /** A number: at most; [min, max]: within; otherwise the value expected. */
  readonly limit: LimitJson;
  readonly unit: string;
  readonly pass: boolean;
  /** Why it failed or was not measured, or where the figure comes from. */
  readonly note?: string;
}

export interface CheckReport {
  readonly checks: CheckResult[];
  readonly pass: boolean;
}

/** A check's value and note; `notMeasurable` passes a null value whose note says why it could not be taken. */
type Measured = { value: number | string | boolean | null; note?: string; notMeasurable?: true };

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function engineSaid(m: CallMeasurements): string {
  if (m.eventsError) return `events could not be read: ${m.eventsError}`;
  const engine = m.started?.engine;
  if (!engine) return "no call.started event came from the runner either";
  if (engine === "null") return 'the runner\'s engine is "null", which transcribes nothing';
  return `engine "${engine}" sent none`;
}

function greeting(m: CallMeasurements): Measured {
  if (m.answerToGreetingMs === null)
    return {
      value: null,
      note: "no greeting media came back (GREETING=none, GREETING=agent with no agent speaking, or STREAM_MODE=start?)",
    };
  const fromStart = m.greetingMs === null ? "" : `, ${round(m.greetingMs)} ms of it after the stream's start`;
  return { value: round(m.answerToGreetingMs), note: `from the voice webhook (the call answered)${fromStart}` };
}

function firstPartial(m: CallMeasurements): Measured {
  if (m.onsetSentAtMs === null) return { value: null, note: "the audio has no speech onset to time from" };
  const first = m.partials.find((p) => p.receivedAtMs >= m.onsetSentAtMs!);
  if (!first) return { value: null, note: `no partial arrived after speech onset: ${engineSaid(m)}` };
  return { value: round(first.receivedAtMs - m.onsetSentAtMs), note: `events by ${m.eventsVia}` };
}

function partialCadence(m: CallMeasurements): Measured {
  const gaps: number[] = [];
  for (let i = 1; i < m.partials.length; i++) {
    const [a, b] = [m.partials[i - 1]!, m.partials[i]!];
    if (a.utteranceId === b.utteranceId) gaps.push(b.wallMs - a.wallMs);
  }
  if (gaps.length === 0) {
    const n = m.partials.length;
    return {
      value: null,
      note:
        n === 0
          ? `no partials: ${engineSaid(m)}`
          : `${n} partial${n === 1 ? "" : "s"}, no two in one utterance: no cadence to measure`,
    };
  }
  return {
    value: percentile(gaps, 0.5),
    note: `${gaps.length} gaps, p90 ${percentile(gaps, 0.9)} ms (the runner's clock)`,
  };
}

function statsMissing(m: CallMeasurements, field: string): Measured {
  if (!m.stats) return { value: null, note: `the edge's call stats could not be read: ${m.statsError ?? "no answer"}` };
  return { value: null, note: `the edge does not report ${field} (an older edge?)` };
}

function feedCadence(m: CallMeasurements): Measured {
  const s = m.stats?.blockIntervalMs;
  if (!s) return statsMissing(m, "blockIntervalMs");
  if (s.p50 === null) return { value: null, note: "no two blocks went to a connected runner in a row" };
  return {
    value: s.p50,
    note: `${s.count} gaps between blocks to the runner, p99 ${s.p99} ms, block ${m.stats?.blockMs ?? "?"} ms`,
  };
}

function handlerTime(m: CallMeasurements): Measured {
  const s = m.stats;
  if (!s || s.handlerMsTotal === undefined || s.framesIn === undefined) return statsMissing(m, "handlerMsTotal");
  if (s.framesIn === 0) return { value: null, note: "the edge took no media frames" };
  return {
    value: round(s.handlerMsTotal / s.framesIn, 3),
    note: `${s.framesIn} frames, max ${s.handlerMsMax ?? "?"} ms; the Worker's clock moves in whole ms (and not at all inside a handler on Cloudflare), so this is a mean of coarse samples`,
  };
}

function buffering(m: CallMeasurements): Measured {
  const s = m.stats?.blockHeldMs;
  if (!s) return statsMissing(m, "blockHeldMs");
  if (s.p99 === null) return { value: null, note: "no full block was made" };
  const pending = m.stats?.relay?.blocksReplayed
    ? `, ${m.stats.relay.blocksReplayed} blocks replayed after a runner outage`
    : "";
  return {
    value: s.p99,
    note: `age of a block's oldest audio when it left the edge: p50 ${s.p50} ms, max ${s.max} ms${pending}`,
  };
}

/**
 * The decode's time per frame: the edge sums its whole-ms clock over every frame's decode (an
 * unbiased estimate of the total). A clock that never moved is not a slow decode: locally the
 * decode (~1 us) is far under a tick, and on Cloudflare the clock stands still inside a handler.
 */
function decodeTime(m: CallMeasurements): Measured {
  const s = m.stats;
  if (!s || s.decodeMsTotal === undefined || s.framesIn === undefined) return statsMissing(m, "decodeMsTotal");
  if (s.framesIn === 0) return { value: null, note: "the edge took no media frames" };
  if (s.decodeMsTotal === 0)
    return {
      value: null,
      notMeasurable: true,
      note: `not measurable: the edge's clock did not move while it decoded ${s.framesIn} frames (whole ms locally, still inside a handler on Cloudflare); ozen bench ingest measures the edge's CPU per frame`,
    };
  return {
    value: round(s.decodeMsTotal / s.framesIn, 4),
    note: `${s.framesIn} frames, ${round(s.decodeMsTotal)} ms in all (whole-ms clock samples): base64 + table decode into the block`,
  };
}

function punctuation(m: CallMeasurements): Measured {
  if (!m.started) return { value: null, note: `no call.started event: ${m.eventsError ?? "the runner sent none"}` };
  const p = m.started.profile;
  if (!p)
    return {
      value: null,
      note: `the runner (engine "${m.started.engine}") does not report its profile (an older runner?)`,
    };
  return { value: p.punctuation, note: `engine "${m.started.engine}", profile "${p.name}"` };
}

const MEASURE: Readonly<Record<CheckName, (m: CallMeasurements) => Measured>> = {
  greeting_latency: greeting,
  first_partial: firstPartial,
  partial_cadence: partialCadence,
  feed_cadence: feedCadence,
  edge_handler_time: handlerTime,
  buffering,
  table_decode: decodeTime,
  punctuation_off: punctuation,
};

/** Every check, in the playbook's order, against `limits` (the defaults unless overridden). */
export function evaluate(m: CallMeasurements, limits: Partial<Record<CheckName, Limit>> = {}): CheckReport {
  const checks = CHECK_NAMES.map((name): CheckResult => {
    const spec = DEFAULT_CHECKS[name];
    const limit = limits[name] ?? spec.limit;
    const { value, note, notMeasurable } = MEASURE[name](m);
    const pass = notMeasurable === true || meets(value, limit);
    return { name, value, limit: limitJson(limit), unit: spec.unit, pass, ...(note ? { note } : {}) };
  });
  return { checks, pass: checks.every((c) => c.pass) };
}
