/**
 * Whether a call may (still) stream, kept in its Durable Object's own SQLite storage (adapter):
 * Twilio opens one Media Stream per call and never reconnects one, so once a stream was admitted
 * (its `ozen_token` checked) every later stream for the CallSid is refused, after the call
 * ended, after the object was evicted and after a restart of the edge. The row is written before
 * the first audio leaves the object: SQL writes are committed before the object's next outgoing
 * message (output gate).
 */

const SCHEMA = `CREATE TABLE IF NOT EXISTS ozen_stream (id INTEGER PRIMARY KEY CHECK (id = 1),
  streamed_at_ms INTEGER NOT NULL, token_nonce TEXT, ended_at_ms INTEGER)`;

/** What the call's storage says about its stream. */
export interface StreamAdmissionState {
  /** When a stream was admitted (wall clock, ms); null: never. */
  readonly streamedAtMs: number | null;
  /** When that stream ended (wall clock, ms); null: not (yet, or the edge stopped before it could say). */
  readonly endedAtMs: number | null;
}

export class StreamAdmission {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(SCHEMA);
  }

  state(): StreamAdmissionState {
    const row = this.sql
      .exec<{ streamed_at_ms: number; ended_at_ms: number | null }>(
        "SELECT streamed_at_ms, ended_at_ms FROM ozen_stream",
      )
      .toArray()[0];
    return { streamedAtMs: row?.streamed_at_ms ?? null, endedAtMs: row?.ended_at_ms ?? null };
  }

  /** True when this call has streamed before: a new stream must be refused. */
  get streamed(): boolean {
    return this.state().streamedAtMs !== null;
  }

  /**
   * Admits the call's one stream at `nowMs`, consuming its token's `nonce` (undefined when tokens
   * are not checked). False when the call has streamed before: nothing is written.
   */
  admit(nowMs: number, nonce: string | undefined): boolean {
    if (this.streamed) return false;
    this.sql.exec("INSERT INTO ozen_stream (id, streamed_at_ms, token_nonce) VALUES (1, ?, ?)", nowMs, nonce ?? null);
    return true;
  }

  /** The admitted stream ended at `nowMs` (kept once; nothing when no stream was admitted). */
  ended(nowMs: number): void {
    this.sql.exec("UPDATE ozen_stream SET ended_at_ms = ? WHERE ended_at_ms IS NULL", nowMs);
  }
}
