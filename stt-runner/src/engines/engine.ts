/**
 * The contract every engine meets (the null runner, Google, the whisper worker): one
 * `EngineSession` per call, fed PCM blocks in order, closed at the end.
 */
import type { RelayStart } from "@ozen/shared";

export interface EngineSession {
  /** A block of PCM16 mono at the call's rate; `startSample` is its audio time. */
  feed(pcm: Int16Array, startSample: number): void;
  /** No more audio; resolves when the engine has said all it will say. */
  end(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  open(call: RelayStart): EngineSession;
}
