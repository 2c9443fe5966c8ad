/**
 * A Durable Object has one alarm; this gives each purpose (`webhook` retries, `d1` flushes and
 * retries, ...) its own due time, stored next to the object's state, and keeps the one alarm set
 * to the earliest. The object's `alarm()` asks `due()` what to run. Storage-backed, so a due time
 * survives eviction: the alarm wakes a fresh instance, which finds the purposes it has to run.
 */
const SCHEMA = "CREATE TABLE IF NOT EXISTS ozen_alarm (purpose TEXT PRIMARY KEY, due_ms INTEGER NOT NULL)";

export class AlarmMux {
  constructor(private readonly storage: DurableObjectStorage) {
    storage.sql.exec(SCHEMA);
  }

  /** Runs `purpose` at `atMs` at the latest (an earlier due time already set is kept). */
  schedule(purpose: string, atMs: number): void {
    this.storage.sql.exec(
      `INSERT INTO ozen_alarm (purpose, due_ms) VALUES (?, ?)
       ON CONFLICT (purpose) DO UPDATE SET due_ms = min(due_ms, excluded.due_ms)`,
      purpose,
      Math.round(atMs),
    );
    this.arm();
  }

  /** Forgets `purpose`'s due time. */
  cancel(purpose: string): void {
    this.storage.sql.exec("DELETE FROM ozen_alarm WHERE purpose = ?", purpose);
    this.arm();
  }

  /**
   * The purposes among `purposes` due at `nowMs`, removed from the table (running one may
   * schedule it again). Each part of the object takes its own purposes: one part's alarm never
   * swallows another's.
   */
  takeDue(nowMs: number, purposes: readonly string[]): string[] {
    const due = this.storage.sql
      .exec<{ purpose: string }>("SELECT purpose FROM ozen_alarm WHERE due_ms <= ?", nowMs)
      .toArray()
      .map((r) => r.purpose)
      .filter((p) => purposes.includes(p));
    for (const p of due) this.storage.sql.exec("DELETE FROM ozen_alarm WHERE purpose = ?", p);
    return due;
  }

  /** Whether `purpose` has a due time set. */
  has(purpose: string): boolean {
    return this.storage.sql.exec("SELECT 1 FROM ozen_alarm WHERE purpose = ?", purpose).toArray().length > 0;
  }

  /** Sets the object's alarm to the earliest due time, or deletes it when nothing is due. */
  arm(): void {
    const next = this.storage.sql.exec<{ t: number | null }>("SELECT min(due_ms) AS t FROM ozen_alarm").one().t;
    // storage operations are ordered and gated: no need to wait for them here
    if (next === null) void this.storage.deleteAlarm();
    else void this.storage.setAlarm(next);
  }
}
