/**
 * The runner's Prometheus metrics (`/metrics`), with prom-client:
 * - the relay's and the engine's counters, read at each scrape (`ozen_runner_<snake_case key>`,
 *   the names they always had; gauges for what is a level: active, draining, up, open);
 * - `ozen_runner_feed_seconds`: time the engine's feed() took per block;
 * - `ozen_runner_feed_interval_seconds`: wall time between blocks fed to a call's engine (the
 *   cadence the engine sees: ~BLOCK_MS live, near 0 in a replay burst);
 * - `ozen_runner_first_partial_latency_seconds{engine}`, `ozen_runner_final_latency_seconds{engine}`:
 *   the events' `latencyMs` (time from the audio's arrival to the event leaving) for the first
 *   partial of each utterance and for each final;
 * - `ozen_runner_partial_interval_seconds{engine}`: time between an utterance's partials;
 * - `ozen_runner_engine_calls{engine}`: calls on each engine now (failover moves a call);
 * - `ozen_runner_engine_stream_restarts_total{role,reason}`: Google stream rollovers and
 *   reconnects, whisper worker restarts (`role` is `engine`, or `primary`/`fallback` under failover).
 * The transcript metrics come from the events the call's transcript policy sends
 * (`observeEvent`); no transcript text is read.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { TranscriptEvent } from "@ozen/shared";

const PREFIX = "ozen_runner_";

const FEED_BUCKETS_S = [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01];
const FEED_INTERVAL_BUCKETS_S = [0.01, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1, 2, 5];
const LATENCY_BUCKETS_S = [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10];
const PARTIAL_INTERVAL_BUCKETS_S = [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5];

/** Engine stats keys that count stream restarts: `engine` + role + what. */
const RESTART_KEY = /^engine(Primary|Fallback)?(Rollovers|Reconnects|Restarts)$/;
const RESTART_REASON: Readonly<Record<string, string>> = {
  Rollovers: "rollover",
  Reconnects: "reconnect",
  Restarts: "worker_restart",
};

/** A counter key in camelCase as a metric name. */
export function metricName(key: string): string {
  return PREFIX + key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

const isLevel = (name: string): boolean => /active|draining|_up$|_open$|open_sockets/.test(name);

interface CallTrack {
  engine: string;
  /** The utterance of the last partial and when it left, wall ms. */
  lastPartial?: { utteranceId: string; wallMs: number };
}

export class Metrics {
  readonly registry = new Registry();
  private readonly feed: Histogram;
  private readonly feedInterval: Histogram;
  private readonly firstPartialLatency: Histogram<"engine">;
  private readonly finalLatency: Histogram<"engine">;
  private readonly partialInterval: Histogram<"engine">;
  private readonly engineCalls: Gauge<"engine">;
  private readonly streamRestarts: Counter<"role" | "reason">;
  /** The counters read at each scrape, by key. */
  private readonly read = new Map<string, Gauge | Counter>();
  private readonly labelled = new Map<string, Counter<string>>();
  private readonly lastFeedMs = new WeakMap<object, number>();
  private readonly calls = new Map<string, CallTrack>();

  constructor() {
    const registers = [this.registry];
    this.feed = new Histogram({
      name: PREFIX + "feed_seconds",
      help: "Time the engine's feed() took for one block.",
      buckets: FEED_BUCKETS_S,
      registers,
    });
    this.feedInterval = new Histogram({
      name: PREFIX + "feed_interval_seconds",
      help: "Wall time between blocks fed to a call's engine.",
      buckets: FEED_INTERVAL_BUCKETS_S,
      registers,
    });
    this.firstPartialLatency = new Histogram({
      name: PREFIX + "first_partial_latency_seconds",
      help: "Latency of each utterance's first partial: from its audio's arrival to the event leaving.",
      labelNames: ["engine"],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.finalLatency = new Histogram({
      name: PREFIX + "final_latency_seconds",
      help: "Latency of each final: from the arrival of its utterance's last audio to the event leaving.",
      labelNames: ["engine"],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.partialInterval = new Histogram({
      name: PREFIX + "partial_interval_seconds",
      help: "Time between consecutive partials of an utterance.",
      labelNames: ["engine"],
      buckets: PARTIAL_INTERVAL_BUCKETS_S,
      registers,
    });
    this.engineCalls = new Gauge({
      name: PREFIX + "engine_calls",
      help: "Calls transcribed by each engine now.",
      labelNames: ["engine"],
      registers,
    });
    this.streamRestarts = new Counter({
      name: PREFIX + "engine_stream_restarts_total",
      help: "Engine streams restarted: Google rollovers and reconnects, whisper worker restarts.",
      labelNames: ["role", "reason"],
      registers,
    });
  }

  /**
   * The engine's feed() took `feedMs` for a block of `call` (any object standing for the call)
   * fed at wall `nowMs`.
   */
  observeFeed(feedMs: number, call?: object, nowMs?: number): void {
    this.feed.observe(feedMs / 1000);
    if (call === undefined || nowMs === undefined) return;
    const last = this.lastFeedMs.get(call);
    if (last !== undefined) this.feedInterval.observe(Math.max(0, nowMs - last) / 1000);
    this.lastFeedMs.set(call, nowMs);
  }

  /** A transcript event a call sent the edge. */
  observeEvent(e: TranscriptEvent): void {
    switch (e.type) {
      case "call.started":
        this.leave(e.callSid);
        this.calls.set(e.callSid, { engine: e.engine });
        this.engineCalls.inc({ engine: e.engine });
        break;
      case "engine.switched": {
        const call = this.calls.get(e.callSid);
        if (!call) break;
        this.engineCalls.dec({ engine: call.engine });
        call.engine = e.to;
        this.engineCalls.inc({ engine: e.to });
        break;
      }
      case "partial": {
        const call = this.calls.get(e.callSid);
        const engine = call?.engine ?? "unknown";
        if (e.seq === 0 && e.latencyMs !== undefined) this.firstPartialLatency.observe({ engine }, e.latencyMs / 1000);
        const last = call?.lastPartial;
        if (last && last.utteranceId === e.utteranceId) {
          this.partialInterval.observe({ engine }, Math.max(0, e.wallMs - last.wallMs) / 1000);
        }
        if (call) call.lastPartial = { utteranceId: e.utteranceId, wallMs: e.wallMs };
        break;
      }
      case "final":
        if (e.latencyMs !== undefined) this.finalLatency.observe({ engine: e.engine }, e.latencyMs / 1000);
        break;
      case "call.ended":
        this.leave(e.callSid);
        break;
      default:
        break;
    }
  }

  private leave(callSid: string): void {
    const call = this.calls.get(callSid);
    if (!call) return;
    this.engineCalls.dec({ engine: call.engine });
    this.calls.delete(callSid);
  }

  /** The content type of `render`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The exposition text, with `counters` (camelCase keys, engine stats prefixed `engine`) read now,
   * and `labelled` counters one metric each with a series per label value (e.g. refusals by reason).
   */
  async render(
    counters: Record<string, number>,
    labelled: Record<string, { label: string; values: Record<string, number> }> = {},
  ): Promise<string> {
    for (const [key, { label, values }] of Object.entries(labelled)) {
      const metric = this.labelledMetric(key, label);
      metric.reset();
      for (const [value, n] of Object.entries(values)) metric.inc({ [label]: value }, Math.max(0, n));
    }
    this.streamRestarts.reset();
    for (const [key, value] of Object.entries(counters)) {
      if (!Number.isFinite(value)) continue;
      this.readMetric(key).set(value);
      const restart = RESTART_KEY.exec(key);
      if (restart) {
        const role = restart[1]?.toLowerCase() ?? "engine";
        this.streamRestarts.inc({ role, reason: RESTART_REASON[restart[2]!]! }, Math.max(0, value));
      }
    }
    return this.registry.metrics();
  }

  /** The labelled counter for `key`, made at its first scrape. */
  private labelledMetric(key: string, label: string): Counter<string> {
    let m = this.labelled.get(key);
    if (!m) {
      m = new Counter({
        name: metricName(key),
        help: `The runner's ${key} by ${label} (read at each scrape).`,
        labelNames: [label],
        registers: [this.registry],
      });
      this.labelled.set(key, m);
    }
    return m;
  }

  /** The metric for a counter key, made at its first scrape; `set` puts the value read now. */
  private readMetric(key: string): { set(value: number): void } {
    let m = this.read.get(key);
    const name = metricName(key);
    if (!m) {
      const help = `The runner's ${key} (read at each scrape).`;
      m = isLevel(name)
        ? new Gauge({ name, help, registers: [this.registry] })
        : new Counter({ name, help, registers: [this.registry] });
      this.read.set(key, m);
    }
    const metric = m;
    return {
      set(value: number) {
        if (metric instanceof Gauge) metric.set(value);
        else {
          metric.reset();
          metric.inc(Math.max(0, value));
        }
      },
    };
  }
}
