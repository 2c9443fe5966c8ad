/**
 * Runner logs about bad input, rate-limited per call and kind: the first occurrence of a
 * (call, kind) is logged, the ones after it are only counted, and the counts come out as one
 * summary line per (call, kind) at the next `flush` (periodically, and when the call ends). A
 * client sending 10,000 bad frames costs a handful of lines, and the count stays exact.
 * Bounded: past `maxKeys` (call, kind) pairs, new pairs share one overflow key. Pure: no clock,
 * no output; the caller logs what it returns.
 */

/** One (call, kind) whose occurrences after the first were not logged. */
export interface SuppressedLog {
  /** The call's sid, or "" for a socket that has no call yet. */
  readonly callSid: string;
  readonly kind: string;
  /** Occurrences counted since the last summary (not logged one by one). */
  readonly suppressed: number;
}

const OVERFLOW = "(other calls)";

export class LogLimiter {
  /** `${callSid}\n${kind}` -> occurrences not logged since the last flush. */
  private readonly counts = new Map<string, number>();

  constructor(readonly maxKeys = 10_000) {}

  /** An occurrence of `kind` for `callSid`: true when it is to be logged (the first of its pair). */
  hit(callSid: string, kind: string): boolean {
    let key = `${callSid}\n${kind}`;
    if (!this.counts.has(key) && this.counts.size >= this.maxKeys) key = `${OVERFLOW}\n${kind}`;
    const n = this.counts.get(key);
    if (n === undefined) {
      this.counts.set(key, 0);
      return true;
    }
    this.counts.set(key, n + 1);
    return false;
  }

  /**
   * The pairs with occurrences not logged since the last flush (all, or only `callSid`'s), for
   * one summary line each; their counts start again from 0. With `forget`, the pairs are
   * forgotten too (the call ended: its next occurrence would be logged again).
   */
  flush(o: { callSid?: string; forget?: boolean } = {}): SuppressedLog[] {
    const out: SuppressedLog[] = [];
    for (const [key, n] of this.counts) {
      const [callSid, kind] = key.split("\n") as [string, string];
      if (o.callSid !== undefined && callSid !== o.callSid) continue;
      if (n > 0) out.push({ callSid, kind, suppressed: n });
      if (o.forget) this.counts.delete(key);
      else this.counts.set(key, 0);
    }
    return out;
  }

  /** Pairs tracked now. */
  get size(): number {
    return this.counts.size;
  }
}
