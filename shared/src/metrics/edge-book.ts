/**
 * The edge's metrics book: what every call reports (its totals so far and its backlogs, a few
 * seconds apart, off its media path) summed into edge-wide counters and gauges. Pure: fed the
 * reports and `nowMs`; the EdgeMetrics Durable Object stores its state and serves the text.
 *
 * A report carries the call's totals, not increments, so a report sent twice, or a late one
 * overtaken by a newer one, counts nothing twice: each series adds only what it grew since the
 * call's highest earlier value. A call that stops reporting (its object was evicted mid-call)
 * stops counting as active after `activeTtlMs`, and its backlogs are forgotten after `entryTtlMs`.
 */
import type { MetricFamily, MetricSample } from "./exposition.js";

/** What a call reports: its totals since it began (monotone) and what waits now. */
export interface CallMetricsReport {
  readonly callSid: string;
  /** The call is streaming (false once it ended). */
  readonly active: boolean;
  /** Bad input from Twilio by kind (`ingest`'s `bad`). */
  readonly badInput: Readonly<Record<string, number>>;
  /** Relay sockets opened after the first (the runner went away, drained, or the link dropped). */
  readonly relayReconnects: number;
  readonly relayConnectFailures: number;
  /** Audio blocks that fell out of the relay buffer before the runner had them. */
  readonly relayBlocksDropped: number;
  /** Events dropped for slow subscribers, by event type. */
  readonly subscriberDrops: Readonly<Record<string, number>>;
  readonly subscribersClosedSlow: number;
  /** Utterances not yet written to D1, now. */
  readonly d1BacklogUtterances: number;
  /** Webhook events waiting in the call's outbox, now. */
  readonly webhookBacklogEvents: number;
}

type CounterField = {
  [K in keyof CallMetricsReport]: CallMetricsReport[K] extends number | Readonly<Record<string, number>> ? K : never;
}[keyof CallMetricsReport];

interface CounterFamily {
  readonly name: string;
  readonly help: string;
  readonly field: CounterField;
  /** The label a by-kind field's keys go in. */
  readonly label?: string;
}

const COUNTERS: readonly CounterFamily[] = [
  { name: "ozen_edge_bad_input_total", help: "Bad input from Twilio, by kind.", field: "badInput", label: "kind" },
  {
    name: "ozen_edge_relay_reconnects_total",
    help: "Relay sockets to the runner opened after a call's first.",
    field: "relayReconnects",
  },
  {
    name: "ozen_edge_relay_connect_failures_total",
    help: "Relay dials that did not open a socket.",
    field: "relayConnectFailures",
  },
  {
    name: "ozen_edge_relay_blocks_dropped_total",
    help: "Audio blocks dropped from the relay buffer before the runner had them (lost audio).",
    field: "relayBlocksDropped",
  },
  {
    name: "ozen_edge_subscriber_dropped_events_total",
    help: "Events dropped for slow agent subscribers, by event type.",
    field: "subscriberDrops",
    label: "type",
  },
  {
    name: "ozen_edge_subscribers_closed_slow_total",
    help: "Agent subscribers closed for falling behind on finals.",
    field: "subscribersClosedSlow",
  },
];

const REPORT_NUMBERS = [
  "relayReconnects",
  "relayConnectFailures",
  "relayBlocksDropped",
  "subscribersClosedSlow",
  "d1BacklogUtterances",
  "webhookBacklogEvents",
] as const;
const REPORT_RECORDS = ["badInput", "subscriberDrops"] as const;
/** Most keys a by-kind record may have, and the longest key. */
const MAX_KINDS = 64;
const MAX_KIND_CHARS = 64;

/** One call as the book holds it. */
export interface CallEntry {
  active: boolean;
  lastReportMs: number;
  /** The call's highest total per series. */
  series: Record<string, number>;
  d1BacklogUtterances: number;
  webhookBacklogEvents: number;
}

/** The book's state: totals (plain data for storage) and the calls (stored one entry each). */
export interface EdgeMetricsState {
  /** Edge-wide totals per series (`name` or `name\tlabel value`). */
  totals: Record<string, number>;
  callsStarted: number;
  readonly calls: Map<string, CallEntry>;
}

export interface EdgeMetricsBookOptions {
  /** A call that has not reported for this long is no longer counted active, ms. */
  readonly activeTtlMs: number;
  /** A call that has not reported for this long is forgotten (its backlogs too), ms. */
  readonly entryTtlMs: number;
}

export const DEFAULT_EDGE_METRICS_BOOK: EdgeMetricsBookOptions = { activeTtlMs: 60_000, entryTtlMs: 3_600_000 };

export type ReportParse =
  { readonly ok: true; readonly report: CallMetricsReport } | { readonly ok: false; readonly message: string };

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

/** Validates a report that crossed a fetch (the book trusts nothing it did not check). */
export function parseCallMetricsReport(v: unknown): ReportParse {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, message: "report is not an object" };
  const o = v as Record<string, unknown>;
  if (typeof o["callSid"] !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(o["callSid"])) {
    return { ok: false, message: "report has no valid callSid" };
  }
  if (typeof o["active"] !== "boolean") return { ok: false, message: "report.active is not a boolean" };
  for (const k of REPORT_NUMBERS) if (!isCount(o[k])) return { ok: false, message: `report.${k} is not a count` };
  for (const k of REPORT_RECORDS) {
    const r = o[k];
    if (typeof r !== "object" || r === null || Array.isArray(r))
      return { ok: false, message: `report.${k} is not an object` };
    const entries = Object.entries(r);
    if (entries.length > MAX_KINDS) return { ok: false, message: `report.${k} has more than ${MAX_KINDS} kinds` };
    for (const [kind, n] of entries) {
      if (kind.length === 0 || kind.length > MAX_KIND_CHARS || !isCount(n)) {
        return { ok: false, message: `report.${k} has a bad entry` };
      }
    }
  }
  return { ok: true, report: o as unknown as CallMetricsReport };
}

function seriesOf(r: CallMetricsReport): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of COUNTERS) {
    const v = r[f.field];
    if (typeof v === "number") out.set(f.name, v);
    else for (const [kind, n] of Object.entries(v)) out.set(`${f.name}\t${kind}`, n);
  }
  return out;
}

export function newEdgeMetricsState(): EdgeMetricsState {
  return { totals: {}, callsStarted: 0, calls: new Map() };
}

export class EdgeMetricsBook {
  constructor(
    readonly state: EdgeMetricsState = newEdgeMetricsState(),
    private readonly o: EdgeMetricsBookOptions = DEFAULT_EDGE_METRICS_BOOK,
  ) {}

  /**
   * Takes a call's report at `nowMs`. Returns the call's entry to store, or undefined when the
   * book no longer holds the call (it ended with nothing waiting).
   */
  report(r: CallMetricsReport, nowMs: number): CallEntry | undefined {
    let entry = this.state.calls.get(r.callSid);
    if (!entry) {
      entry = { active: false, lastReportMs: nowMs, series: {}, d1BacklogUtterances: 0, webhookBacklogEvents: 0 };
      this.state.calls.set(r.callSid, entry);
      this.state.callsStarted++;
    }
    for (const [key, value] of seriesOf(r)) {
      const seen = entry.series[key] ?? 0;
      if (value <= seen) continue;
      this.state.totals[key] = (this.state.totals[key] ?? 0) + (value - seen);
      entry.series[key] = value;
    }
    // a report older than the entry's newest changes no level
    if (nowMs >= entry.lastReportMs) {
      entry.active = r.active;
      entry.lastReportMs = nowMs;
      entry.d1BacklogUtterances = r.d1BacklogUtterances;
      entry.webhookBacklogEvents = r.webhookBacklogEvents;
    }
    if (!entry.active && entry.d1BacklogUtterances === 0 && entry.webhookBacklogEvents === 0) {
      this.state.calls.delete(r.callSid);
      return undefined;
    }
    return entry;
  }

  /** Forgets calls silent for `entryTtlMs` at `nowMs`; returns their CallSids (to delete from storage). */
  expire(nowMs: number): string[] {
    const gone: string[] = [];
    for (const [callSid, e] of this.state.calls) {
      if (nowMs - e.lastReportMs > this.o.entryTtlMs) {
        this.state.calls.delete(callSid);
        gone.push(callSid);
      }
    }
    return gone;
  }

  /** The families at `nowMs`; `refused` are the edge's refused-request counters by reason. */
  families(nowMs: number, refused: Readonly<Record<string, number>> = {}): MetricFamily[] {
    const live = [...this.state.calls.values()].filter((e) => nowMs - e.lastReportMs <= this.o.entryTtlMs);
    const sum = (f: (e: CallEntry) => number) => live.reduce((n, e) => n + f(e), 0);
    const families: MetricFamily[] = [
      {
        name: "ozen_edge_calls_active",
        help: "Calls streaming now (that reported in the last minute).",
        type: "gauge",
        samples: [{ value: sum((e) => (e.active && nowMs - e.lastReportMs <= this.o.activeTtlMs ? 1 : 0)) }],
      },
      {
        name: "ozen_edge_calls_total",
        help: "Calls that reported since the counters began.",
        type: "counter",
        samples: [{ value: this.state.callsStarted }],
      },
    ];
    for (const f of COUNTERS) {
      const samples: MetricSample[] = [];
      for (const [key, value] of Object.entries(this.state.totals)) {
        if (key === f.name) samples.push({ value });
        else if (f.label && key.startsWith(f.name + "\t")) {
          samples.push({ labels: { [f.label]: key.slice(f.name.length + 1) }, value });
        }
      }
      if (!f.label && samples.length === 0) samples.push({ value: 0 });
      families.push({ name: f.name, help: f.help, type: "counter", samples });
    }
    families.push(
      {
        name: "ozen_edge_d1_backlog_utterances",
        help: "Utterances waiting to be written to D1.",
        type: "gauge",
        samples: [{ value: sum((e) => e.d1BacklogUtterances) }],
      },
      {
        name: "ozen_edge_webhook_backlog_events",
        help: "Webhook events waiting in the calls' outboxes.",
        type: "gauge",
        samples: [{ value: sum((e) => e.webhookBacklogEvents) }],
      },
      {
        name: "ozen_edge_requests_refused_total",
        help: "Requests refused: bad Twilio signatures, missing or wrong API tokens, by reason.",
        type: "counter",
        samples: Object.entries(refused).map(([reason, value]) => ({ labels: { reason }, value })),
      },
    );
    return families;
  }
}
