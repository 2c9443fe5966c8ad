/**
 * Twilio's outbound buffer on a bidirectional stream, as a pure model (docs: "The media messages
 * are buffered and played in the order received"; a mark is echoed "when that media message's
 * playback is complete"; `clear` "empties all buffered audio and causes any mark messages to be
 * sent back"). The call simulator plays the caller with it, and the playback tests check the
 * edge's pacing against it. Time is injected: `advance(nowMs)` plays what real time allows.
 */

const BYTES_PER_MS = 8;
const MULAW_SILENCE = 0xff;

type Item =
  { readonly kind: "audio"; readonly bytes: Uint8Array; at: number } | { readonly kind: "mark"; readonly name: string };

export interface PlayoutStep {
  /** Marks to echo, in order. */
  readonly echoes: string[];
  /** What the caller heard since the last step, mu-law 8 kHz (silence where nothing played). */
  readonly heard: Uint8Array;
}

export class TwilioPlayoutBuffer {
  private readonly items: Item[] = [];
  private lastMs: number | undefined;
  /** Fraction of a sample owed from the previous step. */
  private owedSamples = 0;
  /** Audio waiting, bytes. */
  private bufferedBytes = 0;
  /** Most audio that waited at once, ms. */
  maxBufferedMs = 0;
  /** Media bytes played in total (not counting silence). */
  playedBytes = 0;
  /** Media bytes a `clear` dropped in total. */
  clearedBytes = 0;

  /** Audio waiting to be played, ms. */
  get bufferedMs(): number {
    return this.bufferedBytes / BYTES_PER_MS;
  }

  /** Plays what the time since the last step allows. */
  advance(nowMs: number): PlayoutStep {
    const echoes: string[] = [];
    if (this.lastMs === undefined) {
      this.lastMs = nowMs;
      this.echoLeadingMarks(echoes);
      return { echoes, heard: new Uint8Array(0) };
    }
    const exact = (nowMs - this.lastMs) * BYTES_PER_MS + this.owedSamples;
    const samples = Math.max(0, Math.floor(exact));
    this.owedSamples = exact - samples;
    this.lastMs = nowMs;
    const heard = new Uint8Array(samples).fill(MULAW_SILENCE);
    let filled = 0;
    this.echoLeadingMarks(echoes);
    while (filled < samples && this.items.length > 0) {
      const it = this.items[0]!;
      if (it.kind === "mark") {
        echoes.push(it.name);
        this.items.shift();
        continue;
      }
      const n = Math.min(samples - filled, it.bytes.length - it.at);
      heard.set(it.bytes.subarray(it.at, it.at + n), filled);
      filled += n;
      it.at += n;
      this.bufferedBytes -= n;
      this.playedBytes += n;
      if (it.at >= it.bytes.length) {
        this.items.shift();
        this.echoLeadingMarks(echoes);
      }
    }
    return { echoes, heard };
  }

  /** A `media` message from the server at `nowMs` (its payload decoded). */
  media(payload: Uint8Array, nowMs: number): PlayoutStep {
    const step = this.advance(nowMs);
    this.items.push({ kind: "audio", bytes: payload, at: 0 });
    this.bufferedBytes += payload.length;
    this.maxBufferedMs = Math.max(this.maxBufferedMs, this.bufferedMs);
    return step;
  }

  /** A `mark` from the server at `nowMs`: echoed at once when no audio waits before it. */
  mark(name: string, nowMs: number): PlayoutStep {
    const step = this.advance(nowMs);
    this.items.push({ kind: "mark", name });
    this.echoLeadingMarks(step.echoes);
    return step;
  }

  /** A `clear` at `nowMs`: the audio is dropped and every pending mark is echoed. */
  clear(nowMs: number): PlayoutStep {
    const step = this.advance(nowMs);
    for (const it of this.items) {
      if (it.kind === "mark") step.echoes.push(it.name);
      else this.clearedBytes += it.bytes.length - it.at;
    }
    this.items.length = 0;
    this.bufferedBytes = 0;
    return step;
  }

  private echoLeadingMarks(echoes: string[]): void {
    while (this.items[0]?.kind === "mark") echoes.push((this.items.shift() as { name: string }).name);
  }
}
