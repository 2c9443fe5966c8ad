/**
 * Watches Twilio's `sequenceNumber` (one counter across every event of a stream) for gaps.
 * A gap means Twilio dropped messages (e.g. error 31930, a congested socket) or the client did.
 */
export class SequenceTracker {
  private last = -1;
  /** Messages missing between observed ones, in total. */
  missing = 0;
  /** Gaps seen (each run of missing numbers counts once). */
  gaps = 0;
  /** Numbers that went backwards or repeated. */
  outOfOrder = 0;

  /** Records `seq`; returns how many numbers were skipped just before it (0 when in order). */
  observe(seq: number): number {
    if (this.last < 0) {
      this.last = seq;
      return 0;
    }
    if (seq <= this.last) {
      this.outOfOrder++;
      return 0;
    }
    const skipped = seq - this.last - 1;
    this.last = seq;
    if (skipped > 0) {
      this.gaps++;
      this.missing += skipped;
    }
    return skipped;
  }
}
