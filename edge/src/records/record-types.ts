/**
 * The shapes of a call's record (the call, its final utterances, its timeline): plain data, no
 * runtime dependency, so the Durable Object, D1 (`records.ts`, `records-sql.ts`), the API and the
 * tests share them.
 */

export type CallStatus = "in-progress" | "ended";

export interface EngineSwitch {
  readonly wallMs: number;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly resumeFromMs?: number;
}

/** p50 / p95 of a latency over the call's utterances, ms (null when there were none). */
export interface LatencyPair {
  readonly p50: number | null;
  readonly p95: number | null;
}

/** The call as a whole: what `calls` in D1 and `GET /calls` show. */
export interface CallRecord {
  callSid: string;
  accountSid: string;
  streamSid: string;
  status: CallStatus;
  startedAtMs: number;
  endedAtMs: number | null;
  endReason: string | null;
  /** Engines in the order they transcribed the call. */
  engines: string[];
  engineSwitches: EngineSwitch[];
  language: string | null;
  finals: number;
  partials: number;
  /** Latency of each utterance's first partial and of its final, over the call. */
  latency: { firstPartialMs: LatencyPair; finalMs: LatencyPair };
  /** Transcript events by type, and delivery counters (`d1Writes`, `webhookDelivered`, ...). */
  counters: Record<string, number>;
}

/** One final utterance: what `utterances` in D1 and `GET /calls/{CallSid}` show. */
export interface UtteranceRecord {
  utteranceId: string;
  /** n of `${callSid}:u${n}`. */
  n: number;
  text: string;
  rawText: string;
  /** The text of an earlier final of the same utterance that a later one replaced (a second pass). */
  firstPassText: string | null;
  /** Other engines' texts for the same audio (the whisper final pass over a Google final), as the final carried them. */
  alternatives: { engine: string; text: string }[] | null;
  engine: string;
  confidence: number | null;
  audioStartMs: number;
  audioEndMs: number;
  latencyMs: number | null;
  firstPartialLatencyMs: number | null;
  /** Wall time the final was emitted, ms. */
  finalWallMs: number;
  /** Bumped on every change; D1 keeps the highest it was given. */
  version: number;
}

export interface TimelineEntry {
  readonly seq: number;
  readonly type: string;
  readonly wallMs: number;
  readonly event: Record<string, unknown>;
}
