/** CallAudio, the bounded audio kept for replays (worker restart, failover, final pass). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CallAudio } from "../src/engines/call-audio.js";

/** Block sizes fed back to back from sample 0; each sample's value is its call sample mod 30000. */
function fill(audio: CallAudio, sizes: readonly number[]): number {
  let at = 0;
  for (const n of sizes) {
    audio.push(
      Int16Array.from({ length: n }, (_, i) => (at + i) % 30000),
      at,
    );
    at += n;
  }
  return at;
}

const flatten = (blocks: { startSample: number; pcm: Int16Array }[]) =>
  blocks.flatMap((b) => Array.from(b.pcm, (v, i) => [b.startSample + i, v] as const));

describe("CallAudio", () => {
  it("gives back exactly the samples of a span, from whatever it still keeps", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 30 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (sizes, dropAt, from, len) => {
          const audio = new CallAudio(Infinity);
          const end = fill(audio, sizes);
          audio.dropBefore(dropAt % (end + 1));
          const kept = audio.firstSample ?? end;
          const a = from % (end + 1);
          const z = a + (len % 2000);
          const got = flatten(audio.slice(a, z));
          const want = [];
          for (let s = Math.max(a, kept); s < Math.min(z, end); s++) want.push([s, s % 30000] as const);
          expect(got).toEqual(want);
        },
      ),
    );
  });

  it("drops whole blocks that end at or before the point, keeping the one it falls in", () => {
    const audio = new CallAudio(Infinity);
    fill(audio, [800, 800, 800]);
    audio.dropBefore(800);
    expect(audio.firstSample).toBe(800);
    audio.dropBefore(1000);
    expect(audio.firstSample).toBe(800);
    expect(audio.size).toBe(1600);
  });

  it("stays within its bound, dropping the oldest audio and counting it", () => {
    const audio = new CallAudio(2000);
    fill(audio, Array(10).fill(800));
    expect(audio.size).toBe(1600);
    expect(audio.droppedSamples).toBe(6400);
    expect(audio.firstSample).toBe(6400);
  });

  it("keeps a copy, so the caller may reuse its buffer", () => {
    const audio = new CallAudio(Infinity);
    const pcm = new Int16Array([1, 2, 3]);
    audio.push(pcm, 0);
    pcm.fill(9);
    expect(Array.from(audio.slice(0)[0]!.pcm)).toEqual([1, 2, 3]);
  });
});
