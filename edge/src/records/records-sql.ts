/**
 * The SQL of D1 record writes and the values bound to it: plain strings and arrays with no
 * runtime dependency, shared by the Durable Object (`records.ts`) and the tests that replay a
 * write against D1 to check it is idempotent. `version` guards every upsert: a row is replaced
 * only by a higher version, so a redelivered or late write changes nothing.
 */
import type { CallRecord, UtteranceRecord } from "./record-types.js";

export const UPSERT_CALL = `INSERT INTO calls (call_sid, account_sid, stream_sid, status, started_at_ms, ended_at_ms,
  end_reason, engines, engine_switches, language, finals, partials, first_partial_p50_ms, first_partial_p95_ms,
  final_p50_ms, final_p95_ms, counters, version, written_at_ms)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
  ON CONFLICT (call_sid) DO UPDATE SET account_sid = excluded.account_sid, stream_sid = excluded.stream_sid,
  status = excluded.status, started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms,
  end_reason = excluded.end_reason, engines = excluded.engines, engine_switches = excluded.engine_switches,
  language = excluded.language, finals = excluded.finals, partials = excluded.partials,
  first_partial_p50_ms = excluded.first_partial_p50_ms, first_partial_p95_ms = excluded.first_partial_p95_ms,
  final_p50_ms = excluded.final_p50_ms, final_p95_ms = excluded.final_p95_ms, counters = excluded.counters,
  version = excluded.version, written_at_ms = excluded.written_at_ms
  WHERE excluded.version > calls.version`;

export const UPSERT_UTTERANCE = `INSERT INTO utterances (call_sid, utterance_id, n, text, raw_text, first_pass_text, engine,
  confidence, audio_start_ms, audio_end_ms, latency_ms, first_partial_latency_ms, final_wall_ms, version, alternatives)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
  ON CONFLICT (call_sid, utterance_id) DO UPDATE SET n = excluded.n, text = excluded.text,
  raw_text = excluded.raw_text, first_pass_text = excluded.first_pass_text, engine = excluded.engine,
  confidence = excluded.confidence, audio_start_ms = excluded.audio_start_ms, audio_end_ms = excluded.audio_end_ms,
  latency_ms = excluded.latency_ms, first_partial_latency_ms = excluded.first_partial_latency_ms,
  final_wall_ms = excluded.final_wall_ms, version = excluded.version, alternatives = excluded.alternatives
  WHERE excluded.version > utterances.version`;

export type SqlValue = string | number | null;

/** The values of `UPSERT_CALL`, in order. */
export function callRowValues(c: CallRecord, version: number, nowMs: number): SqlValue[] {
  return [
    c.callSid,
    c.accountSid,
    c.streamSid,
    c.status,
    c.startedAtMs,
    c.endedAtMs,
    c.endReason,
    JSON.stringify(c.engines),
    JSON.stringify(c.engineSwitches),
    c.language,
    c.finals,
    c.partials,
    c.latency.firstPartialMs.p50,
    c.latency.firstPartialMs.p95,
    c.latency.finalMs.p50,
    c.latency.finalMs.p95,
    JSON.stringify(c.counters),
    version,
    nowMs,
  ];
}

/** The values of `UPSERT_UTTERANCE`, in order. */
export function utteranceRowValues(callSid: string, u: UtteranceRecord): SqlValue[] {
  return [
    callSid,
    u.utteranceId,
    u.n,
    u.text,
    u.rawText,
    u.firstPassText,
    u.engine,
    u.confidence,
    u.audioStartMs,
    u.audioEndMs,
    u.latencyMs,
    u.firstPartialLatencyMs,
    u.finalWallMs,
    u.version,
    u.alternatives ? JSON.stringify(u.alternatives) : null,
  ];
}
