/**
 * A deterministic engine for delivery tests: its words come from the audio time of each block, so
 * a gap or a repeat in what it heard shows in the text. No test framework here: runner processes
 * (`word-runner.ts`) load it too.
 */
import type { RelayStart } from "@ozen/shared";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";

/** The word the engine says for the block starting at `blockIndex` (100 ms blocks). */
export function wordOf(blockIndex: number): string {
  return `מילה${blockIndex}`;
}

/**
 * Says one word per block it hears (`wordOf(startSample / blockSamples)`), an interim after each
 * block and a final every `blocksPerUtterance` blocks of call audio; commits audio at finals, so a
 * new runner is replayed everything after the last final.
 */
export class WordEngine implements Engine {
  readonly name = "words";
  readonly finals: { callSid: string; text: string }[] = [];

  constructor(private readonly blocksPerUtterance = 5) {}

  open(start: RelayStart, listener: EngineListener): EngineSession {
    const blockSamples = (start.sampleRateHz * start.blockMs) / 1000;
    const msOf = (sample: number) => (sample * 1000) / start.sampleRateHz;
    let words: string[] = [];
    let uttStart = -1;
    let committed = start.resumeFromSeq * blockSamples;
    let heardTo = committed;
    const finish = () => {
      if (words.length === 0) return;
      const text = words.join(" ");
      this.finals.push({ callSid: start.callSid, text });
      committed = heardTo;
      words = [];
      listener.final({ text, audioStartMs: msOf(uttStart), audioEndMs: msOf(heardTo) });
    };
    return {
      feed: (pcm, startSample) => {
        const index = Math.floor(startSample / blockSamples);
        if (words.length === 0) uttStart = startSample;
        words.push(wordOf(index));
        heardTo = startSample + pcm.length;
        if ((index + 1) % this.blocksPerUtterance === 0) finish();
        else listener.interim({ segments: [{ text: words.join(" ") }], audioEndMs: msOf(heardTo) });
      },
      get committedSample() {
        return committed;
      },
      end: async () => finish(),
    };
  }
}
