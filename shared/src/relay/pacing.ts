/**
 * How fast one call's audio may reach its engine: a call is fed at most the wall time since the
 * runner took it, plus a slack. Real calls produce audio in real time; what comes faster is
 * audio already due that waited somewhere: blocks the edge kept while it dialled or while the
 * runner was away, replayed at once on (re)connect. The edge keeps at most its relay buffer
 * (RELAY_BUFFER_MS) of them, so that is the slack. Anything beyond is a client feeding faster
 * than real time, taking other calls' share of the engine: it waits until it is due (`dueMs`), a
 * bounded while, and is refused beyond that (the runner's adapter holds and refuses).
 *
 * Pure: time is given (`nowMs`, wall ms); audio is counted in ms of samples fed.
 */

/** Audio (ms) a call may have been fed by `nowMs`: the wall time since `startedAtMs`, plus `slackMs`. */
export function paceAllowanceMs(startedAtMs: number, nowMs: number, slackMs: number): number {
  return Math.max(0, nowMs - startedAtMs) + slackMs;
}

/** One call's pacing: the audio fed so far against `paceAllowanceMs`. */
export class AudioPacer {
  private fedMs = 0;

  /**
   * @param startedAtMs wall time the runner took the call, ms.
   * @param slackMs audio a call may be ahead of real time, ms (the edge's relay buffer).
   */
  constructor(
    private readonly startedAtMs: number,
    private readonly slackMs: number,
  ) {}

  /** Audio fed so far, ms. */
  get audioFedMs(): number {
    return this.fedMs;
  }

  /**
   * A block of `audioMs` at `nowMs`: true and counted when the call may be fed it, false when it
   * would put the call ahead of its allowance (not counted: the block waits, or is refused).
   */
  admit(audioMs: number, nowMs: number): boolean {
    if (this.fedMs + audioMs > paceAllowanceMs(this.startedAtMs, nowMs, this.slackMs)) return false;
    this.fedMs += audioMs;
    return true;
  }

  /** The wall time, ms, from which a block of `audioMs` may be fed (now or in the past: at once). */
  dueMs(audioMs: number): number {
    return this.startedAtMs + this.fedMs + audioMs - this.slackMs;
  }
}
