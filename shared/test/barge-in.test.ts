/** Barge-in policy and the arrival ring it is timed with: plain values, time injected. */
import { describe, expect, it } from "vitest";
import { AudioArrivals, BargeInPolicy } from "../src/transcript/barge-in.js";

describe("BargeInPolicy", () => {
  it("speech: cuts on the onset while the agent plays, not when it is silent", () => {
    const p = new BargeInPolicy("speech");
    expect(p.onSpeechStarted(1200, false)).toBeNull();
    expect(p.onSpeechStarted(3400, true)).toEqual({ policy: "speech", speechAudioMs: 3400 });
    expect(p.onMeaningful({ audioStartMs: 3400, audioEndMs: 4000 }, true)).toBeNull();
  });

  it("meaningful: ignores the onset, cuts on meaningful, timed from the utterance's start", () => {
    const p = new BargeInPolicy("meaningful");
    expect(p.onSpeechStarted(3400, true)).toBeNull();
    expect(p.onMeaningful({ audioStartMs: 3380, audioEndMs: 4100 }, true)).toEqual({
      policy: "meaningful",
      speechAudioMs: 3380,
    });
    // no start from the engine: the detector's onset, when it is before the text's end
    expect(p.onMeaningful({ audioEndMs: 4100 }, true)).toEqual({ policy: "meaningful", speechAudioMs: 3400 });
    expect(p.onMeaningful({ audioEndMs: 3000 }, true)).toEqual({ policy: "meaningful", speechAudioMs: 3000 });
    expect(p.onMeaningful({ audioEndMs: 4100 }, false)).toBeNull();
  });

  it("off: never cuts", () => {
    const p = new BargeInPolicy("off");
    expect(p.onSpeechStarted(10, true)).toBeNull();
    expect(p.onMeaningful({ audioStartMs: 10, audioEndMs: 900 }, true)).toBeNull();
  });
});

describe("AudioArrivals", () => {
  it("gives the arrival of the block holding an audio time, and forgets what fell off the ring", () => {
    const a = new AudioArrivals(3);
    expect(a.arrivalOf(0)).toBeUndefined();
    a.record(100, 5000);
    a.record(200, 5101);
    a.record(300, 5199);
    expect(a.arrivalOf(150)).toBe(5101);
    expect(a.arrivalOf(300)).toBe(5199);
    expect(a.arrivalOf(301)).toBeUndefined();
    a.record(400, 5300);
    expect(a.arrivalOf(120)).toBe(5101); // within a second of the oldest kept
    a.record(2500, 7400);
    a.record(2600, 7500);
    expect(a.arrivalOf(100)).toBeUndefined();
  });
});
