/**
 * The call's record in its Durable Object's own SQLite storage (adapter): who the call is, its
 * timeline (call.started, finals, engine switches, call.ended) and one row per utterance. It is
 * written as events arrive, so it outlives the object's eviction or a restart of the isolate;
 * D1 gets a copy (`records.ts`), and rows carry a version so the copy knows what it still lacks.
 *
 * SQL calls on `ctx.storage.sql` are synchronous and their writes are committed before the
 * object's next outgoing message leaves (output gate), so no acknowledgement goes out for
 * anything that is not durable yet.
 */
import type { FinalEvent, TranscriptEvent } from "@ozen/shared";
import { percentile } from "@ozen/shared";
import type { CallRecord, EngineSwitch, LatencyPair, TimelineEntry, UtteranceRecord } from "./record-types.js";

export type {
  CallRecord,
  CallStatus,
  EngineSwitch,
  LatencyPair,
  TimelineEntry,
  UtteranceRecord,
} from "./record-types.js";

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ozen_call (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL,
     version INTEGER NOT NULL, d1_version INTEGER NOT NULL DEFAULT 0)`,
  `CREATE TABLE IF NOT EXISTS ozen_timeline (seq INTEGER PRIMARY KEY, type TEXT NOT NULL,
     wall_ms INTEGER NOT NULL, event TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ozen_utterance (utterance_id TEXT PRIMARY KEY, n INTEGER NOT NULL,
     is_final INTEGER NOT NULL DEFAULT 0, record TEXT, first_partial_latency_ms REAL,
     version INTEGER NOT NULL DEFAULT 0, d1_version INTEGER NOT NULL DEFAULT 0)`,
  `CREATE INDEX IF NOT EXISTS ozen_utterance_unwritten ON ozen_utterance (is_final, d1_version, version)`,
  // the highest utterance n the call gave, kept or not: a restarted object numbers past it
  `CREATE TABLE IF NOT EXISTS ozen_utterance_ids (id INTEGER PRIMARY KEY CHECK (id = 1), last_n INTEGER NOT NULL)`,
];

function utteranceN(utteranceId: string): number {
  return Number(utteranceId.slice(utteranceId.lastIndexOf(":u") + 2)) || 0;
}

function summary(values: number[]): LatencyPair {
  return { p50: percentile(values, 0.5), p95: percentile(values, 0.95) };
}

/** What the store holds that D1 does not have yet. */
export interface Unwritten {
  readonly call: CallRecord;
  readonly callVersion: number;
  readonly utterances: UtteranceRecord[];
}

export class CallRecordStore {
  private cached: { record: CallRecord; version: number } | undefined;
  /** Utterances whose first partial is stored: later partials write nothing (no output-gate wait). */
  private readonly firstPartialStored = new Set<string>();
  /** The highest utterance n given so far (cached from storage). */
  private lastUtteranceN: number | undefined;

  constructor(private readonly sql: SqlStorage) {
    for (const s of SCHEMA) sql.exec(s);
  }

  /** The call, or undefined when this object never saw a `start`. */
  get(): CallRecord | undefined {
    if (!this.cached) {
      const row = this.sql
        .exec<{ record: string; version: number }>("SELECT record, version FROM ozen_call")
        .toArray()[0];
      if (!row) return undefined;
      this.cached = { record: JSON.parse(row.record) as CallRecord, version: row.version };
    }
    return this.cached.record;
  }

  /**
   * One past the highest utterance n the call ever gave (delivered, or kept in the record): where
   * the numbering of a restarted object starts, so no id is given twice.
   */
  nextUtteranceN(): number {
    return this.lastN() + 1;
  }

  /** An utterance id was delivered: its n is kept (one write per new utterance, none per partial). */
  noteUtterance(utteranceId: string): void {
    const n = utteranceN(utteranceId);
    if (n <= this.lastN()) return;
    this.lastUtteranceN = n;
    this.sql.exec(
      `INSERT INTO ozen_utterance_ids (id, last_n) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET last_n = max(last_n, excluded.last_n)`,
      n,
    );
  }

  private lastN(): number {
    if (this.lastUtteranceN === undefined) {
      const given = this.sql.exec<{ n: number | null }>("SELECT max(last_n) AS n FROM ozen_utterance_ids").one().n;
      const kept = this.sql.exec<{ n: number | null }>("SELECT max(n) AS n FROM ozen_utterance").one().n;
      this.lastUtteranceN = Math.max(given ?? 0, kept ?? 0);
    }
    return this.lastUtteranceN;
  }

  /** Twilio's `start`: the call exists from here on (a second begin keeps the first). */
  begin(o: { callSid: string; accountSid: string; streamSid: string; startedAtMs: number }): CallRecord {
    const existing = this.get();
    if (existing) return existing;
    const record: CallRecord = {
      ...o,
      status: "in-progress",
      endedAtMs: null,
      endReason: null,
      engines: [],
      engineSwitches: [],
      language: null,
      finals: 0,
      partials: 0,
      latency: { firstPartialMs: summary([]), finalMs: summary([]) },
      counters: {},
    };
    this.cached = { record, version: 0 };
    this.save();
    return record;
  }

  /** Applies a transcript event. Returns true when it changed something D1 should get. */
  apply(e: TranscriptEvent): boolean {
    const call = this.get();
    if (!call) return false;
    const c = call.counters;
    c[e.type] = (c[e.type] ?? 0) + 1;
    switch (e.type) {
      case "partial":
        call.partials++;
        if (e.latencyMs !== undefined && !this.firstPartialStored.has(e.utteranceId)) {
          this.firstPartialStored.add(e.utteranceId);
          this.sql.exec(
            `INSERT INTO ozen_utterance (utterance_id, n, first_partial_latency_ms) VALUES (?, ?, ?)
             ON CONFLICT (utterance_id) DO NOTHING`,
            e.utteranceId,
            utteranceN(e.utteranceId),
            e.latencyMs,
          );
        }
        return false; // counted in memory; saved with the next change that matters
      case "meaningful":
        return false;
      case "call.started":
        if (call.engines.at(-1) !== e.engine) call.engines.push(e.engine);
        call.language = e.language ?? call.language;
        break;
      case "engine.switched": {
        const s: EngineSwitch = { wallMs: e.wallMs, from: e.from, to: e.to, reason: e.reason };
        call.engineSwitches.push(e.resumeFromMs === undefined ? s : { ...s, resumeFromMs: e.resumeFromMs });
        if (e.to !== "none" && call.engines.at(-1) !== e.to) call.engines.push(e.to);
        break;
      }
      case "final":
        this.final(e);
        call.finals = this.sql
          .exec<{ n: number }>("SELECT count(*) AS n FROM ozen_utterance WHERE is_final = 1")
          .one().n;
        this.summarise(call);
        break;
      case "call.ended":
        if (call.status === "ended") return false;
        call.status = "ended";
        call.endedAtMs = e.wallMs;
        call.endReason = e.reason;
        break;
    }
    this.sql.exec(
      "INSERT INTO ozen_timeline (type, wall_ms, event) VALUES (?, ?, ?)",
      e.type,
      e.wallMs,
      JSON.stringify(e),
    );
    this.save();
    return true;
  }

  private final(e: FinalEvent): void {
    const prev = this.sql
      .exec<{ record: string | null; first_partial_latency_ms: number | null; version: number }>(
        "SELECT record, first_partial_latency_ms, version FROM ozen_utterance WHERE utterance_id = ?",
        e.utteranceId,
      )
      .toArray()[0];
    const earlier = prev?.record ? (JSON.parse(prev.record) as UtteranceRecord) : undefined;
    const version = (prev?.version ?? 0) + 1;
    const u: UtteranceRecord = {
      utteranceId: e.utteranceId,
      n: utteranceN(e.utteranceId),
      text: e.text,
      rawText: e.rawText,
      firstPassText: earlier ? (earlier.firstPassText ?? earlier.text) : null,
      alternatives: e.alternatives ? e.alternatives.map((a) => ({ engine: a.engine, text: a.text })) : null,
      engine: e.engine,
      confidence: e.confidence ?? null,
      audioStartMs: e.audioStartMs,
      audioEndMs: e.audioEndMs,
      latencyMs: e.latencyMs ?? null,
      firstPartialLatencyMs: prev?.first_partial_latency_ms ?? null,
      finalWallMs: e.wallMs,
      version,
    };
    this.sql.exec(
      `INSERT INTO ozen_utterance (utterance_id, n, is_final, record, version) VALUES (?, ?, 1, ?, ?)
       ON CONFLICT (utterance_id) DO UPDATE SET is_final = 1, record = excluded.record, version = excluded.version`,
      u.utteranceId,
      u.n,
      JSON.stringify(u),
      version,
    );
  }

  private summarise(call: CallRecord): void {
    const first: number[] = [];
    const fin: number[] = [];
    for (const u of this.utterances()) {
      if (u.firstPartialLatencyMs !== null) first.push(u.firstPartialLatencyMs);
      if (u.latencyMs !== null) fin.push(u.latencyMs);
    }
    call.latency = { firstPartialMs: summary(first), finalMs: summary(fin) };
  }

  /** Adds to a delivery counter (kept with the record; saved with its next change or `save`). */
  count(name: string, by = 1): void {
    const call = this.get();
    if (call) call.counters[name] = (call.counters[name] ?? 0) + by;
  }

  /** Writes the call row, bumping its version. */
  save(): void {
    if (!this.cached) return;
    this.cached.version++;
    this.sql.exec(
      `INSERT INTO ozen_call (id, record, version) VALUES (1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET record = excluded.record, version = excluded.version`,
      JSON.stringify(this.cached.record),
      this.cached.version,
    );
  }

  /** Every final utterance, in utterance order. */
  utterances(): UtteranceRecord[] {
    return this.sql
      .exec<{ record: string }>("SELECT record FROM ozen_utterance WHERE is_final = 1 ORDER BY n")
      .toArray()
      .map((r) => JSON.parse(r.record) as UtteranceRecord);
  }

  timeline(): TimelineEntry[] {
    return this.sql
      .exec<{ seq: number; type: string; wall_ms: number; event: string }>(
        "SELECT seq, type, wall_ms, event FROM ozen_timeline ORDER BY seq",
      )
      .toArray()
      .map((r) => ({
        seq: r.seq,
        type: r.type,
        wallMs: r.wall_ms,
        event: JSON.parse(r.event) as Record<string, unknown>,
      }));
  }

  /** Final utterances whose latest version D1 does not have. */
  unwrittenCount(): number {
    return this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM ozen_utterance WHERE is_final = 1 AND d1_version < version")
      .one().n;
  }

  /** The call and up to `limit` utterances D1 lacks; undefined when D1 is up to date. */
  unwritten(limit: number): Unwritten | undefined {
    const call = this.get();
    if (!call || !this.cached) return undefined;
    const utterances = this.sql
      .exec<{ record: string }>(
        "SELECT record FROM ozen_utterance WHERE is_final = 1 AND d1_version < version ORDER BY n LIMIT ?",
        limit,
      )
      .toArray()
      .map((r) => JSON.parse(r.record) as UtteranceRecord);
    const d1Version = this.sql.exec<{ d1_version: number }>("SELECT d1_version FROM ozen_call").one().d1_version;
    if (utterances.length === 0 && d1Version >= this.cached.version) return undefined;
    return { call: structuredClone(call), callVersion: this.cached.version, utterances };
  }

  /** D1 now has what `unwritten` returned (later changes stay unwritten). */
  written(w: Unwritten): void {
    this.sql.exec("UPDATE ozen_call SET d1_version = max(d1_version, ?)", w.callVersion);
    for (const u of w.utterances) {
      this.sql.exec(
        "UPDATE ozen_utterance SET d1_version = max(d1_version, ?) WHERE utterance_id = ?",
        u.version,
        u.utteranceId,
      );
    }
  }
}
