/**
 * Barge-in: when the caller's speech should cut the agent's voice (`BARGE_IN`), and how late the
 * cut was. Playbook E: not every partial stops the agent; `meaningful` (the default) waits for a
 * partial that says something, `speech` acts on the voice activity detector's onset, `off`
 * leaves it to the agent. Whether agent audio is playing is the caller's to say (the player
 * knows). Pure: call audio times in, wall times injected.
 */

export type BargeInMode = "meaningful" | "speech" | "off";

export const BARGE_IN_MODES: readonly BargeInMode[] = ["meaningful", "speech", "off"];

/** Cut the agent: the caller's speech began at `speechAudioMs` (call audio). */
export interface BargeInDecision {
  readonly policy: "speech" | "meaningful";
  readonly speechAudioMs: number;
}

export class BargeInPolicy {
  /** The onset of the caller's current speech (call audio ms), from `speech.started`. */
  private onsetAudioMs: number | undefined;

  constructor(readonly mode: BargeInMode) {}

  /** The detector heard speech start at `audioMs`. Cuts under `speech` while the agent plays. */
  onSpeechStarted(audioMs: number, agentPlaying: boolean): BargeInDecision | null {
    this.onsetAudioMs = audioMs;
    if (this.mode !== "speech" || !agentPlaying) return null;
    return { policy: "speech", speechAudioMs: audioMs };
  }

  /**
   * A `meaningful` event (its utterance's audio span). Cuts under `meaningful` while the agent
   * plays; the onset is the utterance's start, else the detector's last onset before its end,
   * else its end.
   */
  onMeaningful(
    e: { readonly audioStartMs?: number; readonly audioEndMs: number },
    agentPlaying: boolean,
  ): BargeInDecision | null {
    if (this.mode !== "meaningful" || !agentPlaying) return null;
    const onset =
      e.audioStartMs ??
      (this.onsetAudioMs !== undefined && this.onsetAudioMs <= e.audioEndMs ? this.onsetAudioMs : e.audioEndMs);
    return { policy: "meaningful", speechAudioMs: onset };
  }
}

/**
 * When each piece of call audio arrived (wall ms), to time a barge-in from the caller's speech
 * onset: a ring of (audio end ms, arrival wall ms) per block, the last `capacity` of them.
 */
/** The longest relay block (BLOCK_MS), ms. */
const MAX_BLOCK_MS = 250;

export class AudioArrivals {
  private readonly endsMs: Float64Array;
  private readonly wallMs: Float64Array;
  private count = 0;
  private next = 0;

  constructor(readonly capacity = 600) {
    this.endsMs = new Float64Array(capacity);
    this.wallMs = new Float64Array(capacity);
  }

  /** Call audio up to `audioEndMs` arrived at `wallMs`. */
  record(audioEndMs: number, wallMs: number): void {
    this.endsMs[this.next] = audioEndMs;
    this.wallMs[this.next] = wallMs;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** Wall time the audio at `audioMs` arrived, or undefined when it is older than the ring (or not here yet). */
  arrivalOf(audioMs: number): number | undefined {
    if (this.count === 0) return undefined;
    const oldest = (this.next - this.count + this.capacity) % this.capacity;
    if (this.count === this.capacity) {
      // the block before the oldest is gone: only audio within the oldest block (at most 250 ms) is known
      const second = (oldest + 1) % this.capacity;
      const blockMs = Math.min(MAX_BLOCK_MS, this.endsMs[second]! - this.endsMs[oldest]!);
      if (audioMs <= this.endsMs[oldest]! - blockMs) return undefined;
    }
    for (let i = 0; i < this.count; i++) {
      const k = (oldest + i) % this.capacity;
      if (this.endsMs[k]! >= audioMs) return this.wallMs[k];
    }
    return undefined;
  }
}
