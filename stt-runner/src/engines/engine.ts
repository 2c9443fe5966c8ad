/**
 * The contract every engine meets (the null runner, Google, the whisper worker): one
 * `EngineSession` per call, fed PCM blocks in order, closed at the end. Results go to the
 * `EngineListener` given at open, with times in call audio (ms since the stream began).
 */
import type { EngineProfile, RelayStart, SpeechActivity } from "@ozen/shared";

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
  /** The engine that produced it, when a wrapper composes several; absent: the call's current engine. */
  readonly engine?: string;
  /** Other engines' texts for the same audio (the final pass), unpolished. */
  readonly alternatives?: readonly FinalAlternative[];
}

/** Another engine's text for a final's audio. */
export interface FinalAlternative {
  readonly engine: string;
  readonly text: string;
}

/** A call moved from one engine to another mid-call (failover). */
export interface EngineSwitch {
  readonly from: string;
  readonly to: string;
  /** Why, for people and counters (`grpc_14: ...`, `no_result`, `circuit_open`). */
  readonly reason: string;
  /** Call audio (ms) from which the new engine transcribes. */
  readonly resumeFromMs: number;
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
  /** The call moved to another engine (a failover wrapper says so; plain engines never call it). */
  switched?(s: EngineSwitch): void;
  /** The caller started or stopped speaking (the speech activity wrapper says so, for every engine). */
  speech?(a: SpeechActivity): void;
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
  /** Stops at once and says nothing more (a failover wrapper dropping an engine that went silent). */
  abort?(): void;
}

export interface Engine {
  readonly name: string;
  /** How the engine is set up (profile, punctuation); sent in each call's `call.started`. */
  readonly profile?: EngineProfile;
  /**
   * The engine this call will start on, when a wrapper picks per call (the circuit breaker);
   * the next `open` of the same call keeps that choice. Default: `name`.
   */
  nameFor?(call: RelayStart): string;
  open(call: RelayStart, listener: EngineListener): EngineSession;
  /** False while the engine cannot take calls (its worker is gone); absent: always available. */
  readonly available?: boolean;
  /** Counters for /stats and /metrics (numbers only, never text). */
  stats?(): Record<string, number>;
  /** Releases what the engine holds (clients, worker processes). */
  close?(): Promise<void>;
}
