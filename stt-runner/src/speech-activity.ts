/**
 * Speech activity for every engine: a wrapper around any engine whose sessions run the energy
 * voice activity detector (`SpeechActivityDetector`, shared) over the call's audio before the
 * engine gets it, and tell the listener when the caller starts and stops speaking (call audio
 * times). Composed around the engine like failover, so Google, the whisper worker and the null
 * runner all give `speech.started` / `speech.ended` the same way, without waiting for text.
 * Why one detector here rather than each engine's own: Google v1 has no usable voice activity
 * events, and the whisper worker's Silero decisions do not leave the worker (`ozen bench vad`
 * measures this one against Silero).
 */
import { SpeechActivityDetector } from "@ozen/shared";
import type { RelayStart, SpeechActivity, VadOptions } from "@ozen/shared";
import type { Engine, EngineListener, EngineSession } from "./engines/engine.js";

/** `engine` with a speech activity detector in front of each of its sessions. */
export function withSpeechActivity(engine: Engine, options: Partial<VadOptions> = {}): Engine {
  const wrapped: Engine = {
    get name() {
      return engine.name;
    },
    get profile() {
      return engine.profile;
    },
    get available() {
      return engine.available;
    },
    open(call: RelayStart, listener: EngineListener): EngineSession {
      const vad = new SpeechActivityDetector(options);
      const onActivity = (a: SpeechActivity) => listener.speech?.(a);
      const inner = engine.open(call, listener);
      const rateFactor = call.sampleRateHz / 8000;
      return {
        feed(pcm, startSample) {
          // the detector works at 8 kHz, the relay's rate; another rate is passed through unheard
          if (rateFactor === 1) vad.feed(pcm, startSample, onActivity);
          inner.feed(pcm, startSample);
        },
        get committedSample() {
          return inner.committedSample;
        },
        async end() {
          vad.finish(onActivity);
          await inner.end();
        },
        ...(inner.abort ? { abort: () => inner.abort!() } : {}),
      };
    },
  };
  if (engine.nameFor) wrapped.nameFor = (call) => engine.nameFor!(call);
  if (engine.stats) wrapped.stats = () => engine.stats!();
  if (engine.close) wrapped.close = () => engine.close!();
  return wrapped;
}
