/**
 * A stand-in engine that "hears" speech by its level, for testing the GO check where no real
 * engine can run (no network): while a 100 ms block is louder than -40 dBFS it says one more
 * word as an interim; after 300 ms below that it finals the utterance. It meets the engine
 * contract, so the runner's transcript policy paces its interims like any engine's.
 */
import type { Engine, EngineSession } from "@ozen/stt-runner";
import { levelDbfs } from "../src/check/onset.js";

const WORDS = ["שלום", "זוהי", "בדיקה", "של", "מערכת", "התמלול"];
const SPEECH_DBFS = -40;
const SILENCE_TO_FINAL_MS = 300;

export const levelEngine: Engine = {
  name: "level-test",
  profile: { name: "fast", punctuation: false },
  open(call, listener): EngineSession {
    const rate = call.sampleRateHz;
    let words: string[] = [];
    let startMs = 0;
    let silentMs = 0;
    let endMs = 0;
    const finalize = () => {
      if (words.length === 0) return;
      listener.final({ text: words.join(" "), audioStartMs: startMs, audioEndMs: endMs });
      words = [];
    };
    return {
      feed(pcm, startSample) {
        const blockStartMs = (startSample * 1000) / rate;
        endMs = ((startSample + pcm.length) * 1000) / rate;
        if (levelDbfs(pcm) >= SPEECH_DBFS) {
          if (words.length === 0) startMs = blockStartMs;
          silentMs = 0;
          words.push(WORDS[words.length % WORDS.length]!);
          listener.interim({ segments: [{ text: words.join(" ") }], audioEndMs: endMs });
        } else if (words.length > 0) {
          silentMs += endMs - blockStartMs;
          if (silentMs >= SILENCE_TO_FINAL_MS) finalize();
        }
      },
      end() {
        finalize();
        return Promise.resolve();
      },
    };
  },
};
