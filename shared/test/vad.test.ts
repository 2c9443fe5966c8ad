/** The energy VAD on synthetic audio: onset dated back, hangover, quiet noise ignored, any chunking. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SpeechActivityDetector } from "../src/audio/vad.js";
import type { SpeechActivity } from "../src/audio/vad.js";

/** `ms` of a 300 Hz tone at `amplitude` (0 = silence), plus faint noise. */
function segment(ms: number, amplitude: number, seed = 1): Int16Array {
  const out = new Int16Array(ms * 8);
  let x = seed;
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * 300 * i) / 8000) + ((x % 41) - 20));
  }
  return out;
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function run(pcm: Int16Array, chunks: number[] = []): SpeechActivity[] {
  const vad = new SpeechActivityDetector();
  const events: SpeechActivity[] = [];
  let at = 0;
  for (const c of [...chunks, pcm.length]) {
    const n = Math.min(c, pcm.length - at);
    vad.feed(pcm.subarray(at, at + n), at, (a) => events.push(a));
    at += n;
  }
  vad.finish((a) => events.push(a));
  return events;
}

const speechAt500 = concat([segment(500, 0), segment(800, 8000), segment(1000, 0)]);

describe("SpeechActivityDetector", () => {
  it("starts at the onset (decided 60 ms later) and ends after the hangover", () => {
    expect(run(speechAt500)).toEqual([
      { kind: "started", audioMs: 500, detectedAtMs: 560 },
      { kind: "ended", audioMs: 1300, startAudioMs: 500, detectedAtMs: 1700 },
    ]);
  });

  it("hears nothing in faint noise, nor in a 30 ms click", () => {
    expect(run(segment(3000, 0))).toEqual([]);
    expect(run(concat([segment(500, 0), segment(30, 12000), segment(500, 0)]))).toEqual([]);
  });

  it("ends speech still on when the stream ends", () => {
    expect(run(concat([segment(200, 0), segment(400, 8000)])).map((e) => e.kind)).toEqual(["started", "ended"]);
  });

  it("says the same however the audio is chunked", () => {
    const whole = run(speechAt500);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 10 }), (cuts) => {
        expect(run(speechAt500, cuts)).toEqual(whole);
      }),
    );
  });
});
