/** The worker wire format: encode/decode round trips, frames cut anywhere, bad input as values. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FrameDecoder,
  encodeAudioFrame,
  encodeJsonFrame,
  parseWorkerMessage,
} from "../src/engines/whisper/protocol.js";
import type { AudioFrame, DecodedFrame, JsonMessage } from "../src/engines/whisper/protocol.js";

const jsonMessage = fc
  .record({
    type: fc.string({ maxLength: 12 }),
    key: fc.string(),
    n: fc.integer(),
    text: fc.string({ unit: "grapheme" }),
  })
  .map((m) => m as JsonMessage);
const audio = fc.record({
  key: fc.string({ unit: "grapheme", maxLength: 30 }),
  startSample: fc.nat({ max: 2 ** 40 }),
  pcm: fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 2000 }).map((a) => Int16Array.from(a)),
});
const frame = fc.oneof(
  jsonMessage.map((message) => ({ kind: "json" as const, message })),
  audio.map((a) => ({ kind: "audio" as const, audio: a })),
);

function encode(f: { kind: "json"; message: JsonMessage } | { kind: "audio"; audio: AudioFrame }) {
  return f.kind === "json"
    ? encodeJsonFrame(f.message)
    : encodeAudioFrame(f.audio.key, f.audio.startSample, f.audio.pcm);
}

function comparable(d: DecodedFrame) {
  if (!d.ok) return d;
  const f = d.frame;
  return {
    ok: true,
    frame: f.kind === "json" ? f : { kind: "audio", audio: { ...f.audio, pcm: Array.from(f.audio.pcm) } },
  };
}

describe("whisper worker framing", () => {
  it("decodes every frame it encodes, however the bytes are cut", () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map(encode));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const d = new FrameDecoder();
        const out: DecodedFrame[] = [];
        let at = 0;
        for (const p of [...points, bytes.length]) {
          out.push(...d.push(bytes.subarray(at, p)));
          at = p;
        }
        expect(out.map(comparable)).toEqual(
          frames.map((f) =>
            f.kind === "json"
              ? { ok: true, frame: f }
              : { ok: true, frame: { kind: "audio", audio: { ...f.audio, pcm: Array.from(f.audio.pcm) } } },
          ),
        );
        expect(d.pendingBytes).toBe(0);
      }),
    );
  });

  it("reports a bad frame as a value and goes on with the next", () => {
    const d = new FrameDecoder();
    const notJson = Buffer.from([0, 0, 0, 4, 0x01, 0x7b, 0x78, 0x7d]); // {x}
    const unknownKind = Buffer.from([0, 0, 0, 2, 0x09, 0x00]);
    const noType = encodeJsonFrame({ n: 1 } as unknown as JsonMessage);
    const good = encodeJsonFrame({ type: "stats" });
    const out = d.push(Buffer.concat([notJson, unknownKind, noType, good]));
    expect(out.map((f) => f.ok)).toEqual([false, false, false, true]);
    expect(out[0]).toMatchObject({ message: "JSON frame of 3 bytes is not UTF-8 JSON" });
    expect(out[1]).toMatchObject({ message: "unknown frame kind 9" });
    expect(out[2]).toMatchObject({ message: "JSON frame has no string `type`" });
  });

  it("stops at a length over the limit, since the rest of the stream cannot be trusted", () => {
    const d = new FrameDecoder(1024);
    const out = d.push(Buffer.concat([Buffer.from([0, 0, 8, 0, 0x01]), encodeJsonFrame({ type: "stats" })]));
    expect(out).toEqual([{ ok: false, message: "frame length 2048 is outside 1..1024" }]);
    expect(d.broken).toBe(true);
    expect(d.push(encodeJsonFrame({ type: "stats" }))).toEqual([]);
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const out = new FrameDecoder(256).push(bytes);
        expect(Array.isArray(out)).toBe(true);
      }),
    );
  });

  it("checks worker messages against the protocol", () => {
    expect(
      parseWorkerMessage({ type: "final", key: "CA1", utt: 0, text: "hi", audio_start_ms: 0, audio_end_ms: 900 }),
    ).toMatchObject({ ok: true });
    expect(parseWorkerMessage({ type: "partial", key: "CA1", utt: 0, text: "hi" })).toEqual({
      ok: false,
      message: "worker partial message: stable is missing or mistyped",
    });
    expect(parseWorkerMessage({ type: "hello" })).toEqual({
      ok: false,
      message: 'worker message type "hello" is not in protocol v1',
    });
  });
});
