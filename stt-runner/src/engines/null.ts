import type { Engine, EngineSession } from "./engine.js";

/** Takes audio and says nothing: the stand-in runner for ingest tests and benchmarks. */
export const nullEngine: Engine = {
  name: "null",
  open(): EngineSession {
    return {
      feed() {},
      end: () => Promise.resolve(),
    };
  },
};
