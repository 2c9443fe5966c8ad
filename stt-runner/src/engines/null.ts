import type { Engine, EngineSession } from "./engine.js";

/** Takes audio and says nothing: the stand-in runner for ingest tests and benchmarks. */
export const nullEngine: Engine = {
  name: "null",
  // says nothing, so it punctuates nothing
  profile: { name: "null", punctuation: false },
  open(): EngineSession {
    return {
      feed() {},
      end: () => Promise.resolve(),
    };
  },
};
