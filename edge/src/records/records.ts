/**
 * D1, the queryable copy of every call's record (adapter). The call's Durable Object writes
 * (`writeRecords`) what its own storage holds and D1 lacks; the API reads (`listCalls`,
 * `getCall`). Upserts carry the row's version and replace a row only with a higher one: a write
 * retried after a timeout, or redelivered, changes nothing (migrations: infra/d1/migrations).
 */
import type { CallRecord, CallStatus, UtteranceRecord } from "./call-record.js";
import { UPSERT_CALL, UPSERT_UTTERANCE, callRowValues, utteranceRowValues } from "./records-sql.js";

/** The rows one write sends, as one D1 batch (a transaction: all or none). */
export interface RecordsWrite {
  readonly call: CallRecord;
  readonly callVersion: number;
  readonly utterances: readonly UtteranceRecord[];
}

/** Upserts a call and some of its utterances in one batch. Throws what D1 throws. */
export async function writeRecords(db: D1Database, w: RecordsWrite, nowMs: number): Promise<void> {
  const stmts = [db.prepare(UPSERT_CALL).bind(...callRowValues(w.call, w.callVersion, nowMs))];
  for (const u of w.utterances) stmts.push(db.prepare(UPSERT_UTTERANCE).bind(...utteranceRowValues(w.call.callSid, u)));
  await db.batch(stmts);
}

// ---- reading ----

type CallRow = {
  call_sid: string;
  account_sid: string;
  stream_sid: string;
  status: CallStatus;
  started_at_ms: number;
  ended_at_ms: number | null;
  end_reason: string | null;
  engines: string;
  engine_switches: string;
  language: string | null;
  finals: number;
  partials: number;
  first_partial_p50_ms: number | null;
  first_partial_p95_ms: number | null;
  final_p50_ms: number | null;
  final_p95_ms: number | null;
  counters: string;
};

type UtteranceRow = {
  utterance_id: string;
  n: number;
  text: string;
  raw_text: string;
  first_pass_text: string | null;
  alternatives: string | null;
  engine: string;
  confidence: number | null;
  audio_start_ms: number;
  audio_end_ms: number;
  latency_ms: number | null;
  first_partial_latency_ms: number | null;
  final_wall_ms: number;
  version: number;
};

function callFromRow(r: CallRow): CallRecord {
  return {
    callSid: r.call_sid,
    accountSid: r.account_sid,
    streamSid: r.stream_sid,
    status: r.status,
    startedAtMs: r.started_at_ms,
    endedAtMs: r.ended_at_ms,
    endReason: r.end_reason,
    engines: JSON.parse(r.engines) as string[],
    engineSwitches: JSON.parse(r.engine_switches) as CallRecord["engineSwitches"],
    language: r.language,
    finals: r.finals,
    partials: r.partials,
    latency: {
      firstPartialMs: { p50: r.first_partial_p50_ms, p95: r.first_partial_p95_ms },
      finalMs: { p50: r.final_p50_ms, p95: r.final_p95_ms },
    },
    counters: JSON.parse(r.counters) as Record<string, number>,
  };
}

function utteranceFromRow(r: UtteranceRow): UtteranceRecord {
  return {
    utteranceId: r.utterance_id,
    n: r.n,
    text: r.text,
    rawText: r.raw_text,
    firstPassText: r.first_pass_text,
    alternatives: r.alternatives ? (JSON.parse(r.alternatives) as UtteranceRecord["alternatives"]) : null,
    engine: r.engine,
    confidence: r.confidence,
    audioStartMs: r.audio_start_ms,
    audioEndMs: r.audio_end_ms,
    latencyMs: r.latency_ms,
    firstPartialLatencyMs: r.first_partial_latency_ms,
    finalWallMs: r.final_wall_ms,
    version: r.version,
  };
}

/** A call with its final utterances in order, or undefined when D1 has no such call. */
export async function getCall(
  db: D1Database,
  callSid: string,
): Promise<{ call: CallRecord; utterances: UtteranceRecord[] } | undefined> {
  const [calls, utterances] = await db.batch([
    db.prepare("SELECT * FROM calls WHERE call_sid = ?").bind(callSid),
    db.prepare("SELECT * FROM utterances WHERE call_sid = ? ORDER BY n").bind(callSid),
  ]);
  const row = (calls?.results as CallRow[] | undefined)?.[0];
  if (!row) return undefined;
  return { call: callFromRow(row), utterances: ((utterances?.results ?? []) as UtteranceRow[]).map(utteranceFromRow) };
}

export interface CallQuery {
  /** 1..200. */
  readonly limit: number;
  readonly status?: CallStatus;
  readonly accountSid?: string;
  /** Calls that started at or after this wall time, ms. */
  readonly sinceMs?: number;
  /** Calls that started before this wall time, ms. */
  readonly untilMs?: number;
  /** From a previous page's `nextCursor`. */
  readonly cursor?: CallCursor;
}

/** Where a page ended: newest first, so the next page starts below this call. */
export interface CallCursor {
  readonly startedAtMs: number;
  readonly callSid: string;
}

export function encodeCursor(c: CallCursor): string {
  return btoa(JSON.stringify([c.startedAtMs, c.callSid]))
    .replace(/=+$/, "")
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
}

/** The cursor a page gave, or undefined when `text` is not one. */
export function decodeCursor(text: string): CallCursor | undefined {
  try {
    const v = JSON.parse(atob(text.replace(/-/g, "+").replace(/_/g, "/"))) as unknown;
    if (Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && typeof v[1] === "string") {
      return { startedAtMs: v[0] as number, callSid: v[1] };
    }
  } catch {
    // not base64 or not JSON: undefined below
  }
  return undefined;
}

/** A page of calls, newest first (by start, then CallSid), and the cursor of the next page. */
export async function listCalls(
  db: D1Database,
  q: CallQuery,
): Promise<{ calls: CallRecord[]; nextCursor: string | null }> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (q.status) {
    where.push("status = ?");
    args.push(q.status);
  }
  if (q.accountSid) {
    where.push("account_sid = ?");
    args.push(q.accountSid);
  }
  if (q.sinceMs !== undefined) {
    where.push("started_at_ms >= ?");
    args.push(q.sinceMs);
  }
  if (q.untilMs !== undefined) {
    where.push("started_at_ms < ?");
    args.push(q.untilMs);
  }
  if (q.cursor) {
    where.push("(started_at_ms < ? OR (started_at_ms = ? AND call_sid < ?))");
    args.push(q.cursor.startedAtMs, q.cursor.startedAtMs, q.cursor.callSid);
  }
  const sql =
    "SELECT * FROM calls" +
    (where.length ? ` WHERE ${where.join(" AND ")}` : "") +
    " ORDER BY started_at_ms DESC, call_sid DESC LIMIT ?";
  const { results } = await db
    .prepare(sql)
    .bind(...args, q.limit + 1)
    .all<CallRow>();
  const rows = results.slice(0, q.limit);
  const last = rows.at(-1);
  return {
    calls: rows.map(callFromRow),
    nextCursor:
      results.length > q.limit && last
        ? encodeCursor({ startedAtMs: last.started_at_ms, callSid: last.call_sid })
        : null,
  };
}
