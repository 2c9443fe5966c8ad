/**
 * The speech activity wrapper: any engine gets `speech.started` / `speech.ended` from the
 * detector, the engine hears exactly the audio it would have, and the forwarder turns the
 * activity into version 1 events.
 */
import { describe, expect, it } from "vitest";
import { parseRunnerToEdge, parseTranscriptEvent } from "@ozen/shared";
import type { RelayStart, SpeechActivity } from "@ozen/shared";
import { withSpeechActivity } from "../src/speech-activity.js";
import { ArrivalClock, TranscriptForwarder } from "../src/transcripts.js";
import type { Engine, EngineListener } from "../src/engines/engine.js";

const start: RelayStart = {
  v: 1,
  type: "start",
  callSid: "CAvad",
  streamSid: "MZvad",
  accountSid: "AC1",
  sampleRateHz: 8000,
  encoding: "pcm16le",
  blockMs: 100,
  tracks: ["inbound"],
  customParameters: {},
  resumeFromSeq: 0,
};

/** 100 ms blocks: `quiet` of silence, then `loud` of a 300 Hz tone, then `quiet` again. */
function blocks(quiet: number, loud: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let b = 0; b < quiet * 2 + loud; b++) {
    const on = b >= quiet && b < quiet + loud;
    out.push(
      Int16Array.from({ length: 800 }, (_, i) =>
        on ? Math.round(8000 * Math.sin((2 * Math.PI * 300 * (b * 800 + i)) / 8000)) : 0,
      ),
    );
  }
  return out;
}

describe("withSpeechActivity", () => {
  it("tells the listener when speech starts and ends, and feeds the engine the same audio", async () => {
    const fed: number[] = [];
    const inner: Engine = {
      name: "inner",
      open: () => ({ feed: (pcm, s) => void fed.push(s, pcm.length), end: async () => {} }),
    };
    const activity: SpeechActivity[] = [];
    const listener: EngineListener = { interim() {}, final() {}, failed() {}, speech: (a) => void activity.push(a) };
    const session = withSpeechActivity(inner).open(start, listener);
    let at = 0;
    for (const b of blocks(5, 8)) {
      session.feed(b, at);
      at += b.length;
    }
    await session.end();
    expect(activity.map((a) => [a.kind, a.audioMs])).toEqual([
      ["started", 500],
      ["ended", 1300],
    ]);
    expect(fed.length / 2).toBe(18);
    expect(withSpeechActivity(inner).name).toBe("inner");
  });

  it("the forwarder sends speech.started and speech.ended as valid version 1 events", () => {
    const sent: unknown[] = [];
    const f = new TranscriptForwarder({
      start,
      engine: "inner",
      clock: new ArrivalClock(),
      now: () => 5000,
      send: (text) => {
        const c = parseRunnerToEdge(text);
        if (c.ok && c.message.type === "event") sent.push(c.message.event);
      },
    });
    f.speech({ kind: "started", audioMs: 500, detectedAtMs: 560 });
    f.speech({ kind: "ended", audioMs: 1300, startAudioMs: 500, detectedAtMs: 1700 });
    const speech = sent.filter((e) => (e as { type: string }).type.startsWith("speech."));
    expect(speech).toEqual([
      { v: 1, type: "speech.started", callSid: "CAvad", wallMs: 5000, audioMs: 500 },
      { v: 1, type: "speech.ended", callSid: "CAvad", wallMs: 5000, audioMs: 1300, startAudioMs: 500 },
    ]);
    for (const e of speech) expect(parseTranscriptEvent(e).ok).toBe(true);
  });
});
