/**
 * A call's webhook outbox in its Durable Object's SQLite storage (adapter): events waiting to be
 * POSTed, in the order they happened, each with a stable number (`seq`, 1, 2, ... per call,
 * never reused) that becomes its idempotency key. An event leaves the outbox only once its
 * receiver answered 2xx, so a crash or eviction before that means it is sent again: at least once.
 *
 * Bounded: past `max` events, room is made by dropping the oldest `partial`/`meaningful` event;
 * when only finals and call events are left, the oldest event is dropped. Either way the drop is
 * counted (`webhookDroppedPartials`, `webhookDropped`) and logged once; finals remain readable in the
 * records API.
 */
export interface OutboxEntry {
  readonly seq: number;
  readonly type: string;
  /** The JSON body, exactly as it is POSTed (and signed). */
  readonly body: string;
  readonly attempts: number;
}

/** What `enqueue` had to drop to stay within the bound. */
export interface Dropped {
  readonly partials: number;
  readonly others: number;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ozen_outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0, droppable INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS ozen_outbox_droppable ON ozen_outbox (droppable, seq)`,
  `CREATE TABLE IF NOT EXISTS ozen_outbox_state (id INTEGER PRIMARY KEY CHECK (id = 1), next_seq INTEGER NOT NULL,
     failures INTEGER NOT NULL, failing_since_ms INTEGER, next_attempt_ms INTEGER)`,
  `INSERT OR IGNORE INTO ozen_outbox_state (id, next_seq, failures) VALUES (1, 1, 0)`,
];

export interface OutboxState {
  /** The seq the next enqueued event gets. */
  readonly nextSeq: number;
  /** Failed attempts in a row (0 after a success). */
  readonly failures: number;
  /** Wall time of the first failure of the current run of failures, ms. */
  readonly failingSinceMs: number | null;
  /** No attempt before this wall time, ms (backoff). */
  readonly nextAttemptMs: number | null;
}

export class Outbox {
  constructor(
    private readonly sql: SqlStorage,
    private readonly max: number,
  ) {
    for (const s of SCHEMA) sql.exec(s);
  }

  /** Adds an event; `body` is built from the seq it gets. Returns the seq and what had to go. */
  enqueue(type: string, body: (seq: number) => string): { seq: number; dropped: Dropped } {
    const seq = this.state().nextSeq;
    const droppable = type === "partial" || type === "meaningful" ? 1 : 0;
    let partials = 0;
    let others = 0;
    let size = this.size();
    while (size >= this.max) {
      const victim =
        this.sql
          .exec<{ seq: number }>("SELECT seq FROM ozen_outbox WHERE droppable = 1 ORDER BY seq LIMIT 1")
          .toArray()[0] ??
        this.sql.exec<{ seq: number }>("SELECT seq FROM ozen_outbox ORDER BY seq LIMIT 1").toArray()[0];
      if (!victim) break;
      const wasPartial =
        this.sql.exec<{ d: number }>("SELECT droppable AS d FROM ozen_outbox WHERE seq = ?", victim.seq).one().d === 1;
      this.sql.exec("DELETE FROM ozen_outbox WHERE seq = ?", victim.seq);
      if (wasPartial) partials++;
      else others++;
      size--;
    }
    this.sql.exec(
      "INSERT INTO ozen_outbox (seq, type, body, droppable) VALUES (?, ?, ?, ?)",
      seq,
      type,
      body(seq),
      droppable,
    );
    this.sql.exec("UPDATE ozen_outbox_state SET next_seq = ?", seq + 1);
    return { seq, dropped: { partials, others } };
  }

  /** The oldest event waiting, if any. */
  head(): OutboxEntry | undefined {
    return this.sql
      .exec<{ seq: number; type: string; body: string; attempts: number }>(
        "SELECT seq, type, body, attempts FROM ozen_outbox ORDER BY seq LIMIT 1",
      )
      .toArray()[0];
  }

  size(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM ozen_outbox").one().n;
  }

  /** The receiver took event `seq`: it leaves, and the failure run (if any) ends. */
  delivered(seq: number): void {
    this.sql.exec("DELETE FROM ozen_outbox WHERE seq = ?", seq);
    this.sql.exec("UPDATE ozen_outbox_state SET failures = 0, failing_since_ms = NULL, next_attempt_ms = NULL");
  }

  /** An attempt at event `seq` failed; the next waits until `nextAttemptMs`. */
  failed(seq: number, nowMs: number, nextAttemptMs: number): void {
    this.sql.exec("UPDATE ozen_outbox SET attempts = attempts + 1 WHERE seq = ?", seq);
    this.sql.exec(
      "UPDATE ozen_outbox_state SET failures = failures + 1, failing_since_ms = coalesce(failing_since_ms, ?), next_attempt_ms = ?",
      nowMs,
      nextAttemptMs,
    );
  }

  /** Drops every waiting event (giving up on a receiver); returns how many. */
  clear(): number {
    const n = this.size();
    this.sql.exec("DELETE FROM ozen_outbox");
    this.sql.exec("UPDATE ozen_outbox_state SET failures = 0, failing_since_ms = NULL, next_attempt_ms = NULL");
    return n;
  }

  state(): OutboxState {
    const r = this.sql
      .exec<{ next_seq: number; failures: number; failing_since_ms: number | null; next_attempt_ms: number | null }>(
        "SELECT next_seq, failures, failing_since_ms, next_attempt_ms FROM ozen_outbox_state",
      )
      .one();
    return {
      nextSeq: r.next_seq,
      failures: r.failures,
      failingSinceMs: r.failing_since_ms,
      nextAttemptMs: r.next_attempt_ms,
    };
  }
}
