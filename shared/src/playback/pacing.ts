/**
 * How far ahead of the caller's ear the edge may send the agent's audio to Twilio. Twilio plays
 * its buffer in real time and echoes a mark when the audio before it has played; this pure
 * object keeps an estimate of what Twilio has played (anchored at each echo, advancing in real
 * time between them, never past what was sent) and says how many frames may go now so that at
 * most `leadMs` waits in Twilio's buffer, and when to wake for the next. Pure: fed `nowMs`.
 *
 * Why pace at all when `clear` empties Twilio's buffer: what was never sent can be dropped at the
 * edge exactly (nothing of a cleared utterance is ever sent after the clear), the mark echoes
 * tell how much the caller heard within one lead, and Twilio's buffer is not documented to be
 * unbounded.
 */

export interface PacerOptions {
  /** Audio allowed in Twilio's buffer, ms. */
  readonly leadMs: number;
  /** One frame, ms. */
  readonly frameMs: number;
}

export class PlayoutPacer {
  /** Audio sent to Twilio in total, ms (a running offset: marks are placed on it). */
  private sentEndMs = 0;
  /** What Twilio had played (ms on the same offset) at `anchorWallMs`. */
  private anchorPlayedMs = 0;
  private anchorWallMs = 0;
  /** Where (offset) and when (wall) Twilio's buffer last went from empty to playing. */
  private runStartMs = 0;
  private runStartWallMs = 0;

  constructor(readonly o: PacerOptions) {}

  /** Audio sent so far, ms: where a mark sent now sits. */
  get sentMs(): number {
    return this.sentEndMs;
  }

  /** Estimate of the audio Twilio has played by `nowMs`, ms (same offset as `sentMs`). */
  playedMs(nowMs: number): number {
    return Math.min(this.sentEndMs, this.anchorPlayedMs + Math.max(0, nowMs - this.anchorWallMs));
  }

  /** Estimate of the audio waiting in Twilio's buffer at `nowMs`, ms. */
  bufferedMs(nowMs: number): number {
    return this.sentEndMs - this.playedMs(nowMs);
  }

  /** Frames that may be sent at `nowMs` without more than `leadMs` waiting in Twilio's buffer. */
  framesAllowed(nowMs: number): number {
    return Math.max(0, Math.floor((this.o.leadMs - this.bufferedMs(nowMs)) / this.o.frameMs));
  }

  /** `ms` of audio was sent at `nowMs`. Into an empty buffer, Twilio starts playing it now. */
  sent(ms: number, nowMs: number): void {
    if (this.bufferedMs(nowMs) <= 0) {
      this.anchorPlayedMs = this.sentEndMs;
      this.anchorWallMs = nowMs;
      this.runStartMs = this.sentEndMs;
      this.runStartWallMs = nowMs;
    }
    this.sentEndMs += ms;
  }

  /**
   * Twilio echoed, at `nowMs`, a mark that was sent at offset `markMs`: the audio before it has
   * played. The estimate restarts from there (an echo is late by the network, so this errs
   * towards more audio buffered, never less). An echo cannot mean Twilio played faster than real
   * time since its buffer last started: an early echo is believed only that far.
   */
  echoed(markMs: number, nowMs: number): void {
    if (markMs > this.sentEndMs) return;
    this.anchorPlayedMs = Math.min(markMs, this.runStartMs + Math.max(0, nowMs - this.runStartWallMs));
    this.anchorWallMs = nowMs;
  }

  /** Twilio's buffer was emptied (`clear`) at `nowMs`: everything sent counts as played. */
  cleared(nowMs: number): void {
    this.anchorPlayedMs = this.sentEndMs;
    this.anchorWallMs = nowMs;
    this.runStartMs = this.sentEndMs;
    this.runStartWallMs = nowMs;
  }

  /** When one more frame may go (wall ms), for a caller that has frames waiting. */
  nextWakeMs(nowMs: number): number {
    const overMs = this.bufferedMs(nowMs) - (this.o.leadMs - this.o.frameMs);
    return nowMs + Math.max(1, Math.ceil(overMs));
  }
}
