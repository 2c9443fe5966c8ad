/**
 * The blocks' road to the relay as plain values: MediaIngest decoding into RelayFrameSink gives
 * relay audio frames the runner reads back bit-exact (the short last block with its own header),
 * held until the call sends them, and frames the runner acknowledged are reused.
 */
import { describe, expect, it } from "vitest";
import { MediaIngest, decodeAudioFrame, decodeMulaw, encodeBase64, serializeInbound } from "@ozen/shared";
import type { AudioFrame } from "@ozen/shared";
import { RelayFrameSink } from "../src/call/relay-frames.js";
import type { SealedBlock } from "../src/call/relay-frames.js";

const CALL_SID = "CA0123456789abcdef0123456789abcdef";

function start(): string {
  return serializeInbound({
    event: "start",
    sequenceNumber: 1,
    streamSid: "MZ1",
    start: {
      accountSid: "AC1",
      streamSid: "MZ1",
      callSid: CALL_SID,
      tracks: ["inbound"],
      customParameters: {},
      mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    },
  });
}

function media(n: number, bytes: Uint8Array): string {
  return serializeInbound({
    event: "media",
    sequenceNumber: n + 2,
    streamSid: "MZ1",
    media: { track: "inbound", chunk: n + 1, timestamp: n * 20, payload: encodeBase64(bytes) },
  });
}

/** A call's ingest writing into a RelayFrameSink; `sent` is what the call would relay. */
function call() {
  const frames = new RelayFrameSink(() => CALL_SID);
  const ingest = new MediaIngest({ blockSamples: 800, sink: frames });
  ingest.receive(start());
  const sent: SealedBlock[] = [];
  const play = (audio: Uint8Array, from = 0) => {
    for (let i = 0; i < audio.length; i += 160) {
      const e = ingest.receive(media(from + i / 160, audio.subarray(i, i + 160)));
      if (e.event === "media") ingest.takeAudio(e, 0);
    }
  };
  return { frames, ingest, sent, play, send: () => frames.drain((b) => sent.push(b)) };
}

function read(b: SealedBlock): AudioFrame {
  const r = decodeAudioFrame(b.frame);
  if (!r.ok) throw new Error(r.message);
  return r.frame;
}

const audio = Uint8Array.from({ length: 13 * 160 }, (_, i) => (i * 29 + 3) & 0xff);

describe("relay frames", () => {
  it("hold sealed blocks until sent, as relay frames the runner reads back bit-exact", () => {
    const c = call();
    c.play(audio);
    expect(c.sent).toEqual([]);
    c.send();
    c.ingest.finish();
    c.send();
    const frames = c.sent.map(read);
    expect(frames.map((f) => [f.callId, f.seq, f.startSample, f.sampleRateHz, f.pcm.length])).toEqual([
      [CALL_SID, 0, 0, 8000, 800],
      [CALL_SID, 1, 800, 8000, 800],
      [CALL_SID, 2, 1600, 8000, 480],
    ]);
    expect(c.sent.map((b) => b.full)).toEqual([true, true, false]);
    const pcm = new Int16Array(13 * 160);
    for (const f of frames) pcm.set(f.pcm, f.startSample);
    expect(pcm).toEqual(decodeMulaw(audio));
  });

  it("reuse a frame the runner acknowledged for a later block", () => {
    const c = call();
    c.play(audio.subarray(0, 800));
    c.send();
    const first = c.sent[0]!.frame;
    c.frames.recycle(first);
    c.play(audio.subarray(800, 1600), 5);
    c.send();
    expect(c.sent[1]!.frame).toBe(first);
    expect(read(c.sent[1]!)).toMatchObject({ seq: 1, startSample: 800 });
  });
});
