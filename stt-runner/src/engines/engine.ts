/**
 * The contract every engine meets (the null runner, Google, the whisper worker): one
 * `EngineSession` per call, fed PCM blocks in order, closed at the end. Results go to the
 * `EngineListener` given at open, with times in call audio (ms since the stream began).
 */
import type { EngineProfile, RelayStart } from "@ozen/shared";

export interface InterimSegment {
  readonly text: string;
  /** Google's stability (0..1); absent when the engine has none. */
  readonly stability?: number;
}

export interface EngineInterim {
  readonly segments: readonly InterimSegment[];
  /** Call audio time the hypothesis reaches, ms. */
  readonly audioEndMs: number;
}

export interface EngineFinal {
  readonly text: string;
  readonly confidence?: number;
  readonly audioStartMs: number;
  readonly audioEndMs: number;
}

/** A failure the session could not recover from by itself (its retry budget is spent). */
export interface EngineFailure {
  readonly code: string;
  readonly message: string;
  /** Call audio (ms) from which nothing final was produced: a fallback engine starts here. */
  readonly resumeFromMs: number;
}

export interface EngineListener {
  interim(r: EngineInterim): void;
  final(r: EngineFinal): void;
  failed(f: EngineFailure): void;
}

export interface EngineSession {
  /** A block of PCM16 mono at the call's rate; `startSample` is its audio time. */
  feed(pcm: Int16Array, startSample: number): void;
  /**
   * Audio before this sample is done with (its words are in finals); a new engine would have
   * to hear everything after it again. Undefined: the engine keeps nothing, all fed audio is done.
   */
  readonly committedSample?: number;
  /** No more audio; resolves when the engine has said all it will say. */
  end(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** How the engine is set up (profile, punctuation); sent in each call's `call.started`. */
  readonly profile?: EngineProfile;
  open(call: RelayStart, listener: EngineListener): EngineSession;
}
