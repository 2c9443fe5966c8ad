/**
 * The Twilio ingest rules as plain values: messages in (as Twilio puts them on the wire), blocks,
 * counters, notices and events out. One test per row of the README's "Bad input" table, then
 * the rules around it and properties for any input.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  GAP_FILL_SLACK_MS,
  MAX_GAP_FILL_MS,
  MediaIngest,
  computeTwilioSignature,
  decodeMulaw,
  encodeBase64,
  serializeInbound,
  validateTwilioSignature,
} from "../src/index.js";
import type { BlockSink, IngestEvent, TwilioInbound } from "../src/index.js";

const BLOCK_SAMPLES = 800; // 100 ms at 8 kHz
const STREAM_SID = "MZ00000000000000000000000000000001";

interface Block {
  readonly seq: number;
  readonly startSample: number;
  readonly pcm: Int16Array;
}

/** A sink that keeps a copy of every block sealed. */
function collectingSink(): { sink: BlockSink; blocks: Block[] } {
  const blocks: Block[] = [];
  let open = new Int16Array(0);
  const sink: BlockSink = {
    open: (_seq, _start, capacity) => (open = new Int16Array(capacity)),
    seal: (seq, startSample, samples) => blocks.push({ seq, startSample, pcm: open.slice(0, samples) }),
  };
  return { sink, blocks };
}

/** Plays Twilio: numbered messages, media stamped with its media time, as the wire has them. */
class TwilioScript {
  private seq = 1;
  private chunk = 1;
  /** The media time the next frame carries, ms. */
  timestampMs = 0;

  connected(): string {
    return serializeInbound({ event: "connected", protocol: "Call", version: "1.0.0" });
  }

  start(): string {
    return this.next({
      event: "start",
      sequenceNumber: 0,
      streamSid: STREAM_SID,
      start: {
        accountSid: "AC1",
        streamSid: STREAM_SID,
        callSid: "CA1",
        tracks: ["inbound"],
        customParameters: {},
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    });
  }

  /** A media message carrying `bytes` of mu-law (or `payload` as is); the clock moves by the bytes. */
  media(bytes: Uint8Array, o: { payload?: string; track?: string } = {}): string {
    const text = this.next({
      event: "media",
      sequenceNumber: 0,
      streamSid: STREAM_SID,
      media: {
        track: o.track ?? "inbound",
        chunk: this.chunk++,
        // Twilio's stamps are whole ms
        timestamp: Math.floor(this.timestampMs),
        payload: o.payload ?? encodeBase64(bytes),
      },
    });
    this.timestampMs += bytes.length / 8;
    return text;
  }

  /** Frames Twilio numbered and stamped but never delivered (congestion upstream). */
  lose(frames: number): void {
    this.seq += frames;
    this.chunk += frames;
    this.timestampMs += frames * 20;
  }

  dtmf(digit: string): string {
    return this.next({
      event: "dtmf",
      sequenceNumber: 0,
      streamSid: STREAM_SID,
      dtmf: { track: "inbound_track", digit },
    });
  }

  stop(): string {
    return this.next({
      event: "stop",
      sequenceNumber: 0,
      streamSid: STREAM_SID,
      stop: { accountSid: "AC1", callSid: "CA1" },
    });
  }

  private next(m: TwilioInbound): string {
    return serializeInbound({ ...m, sequenceNumber: this.seq++ } as TwilioInbound);
  }
}

/** `frames` frames of 160 bytes of distinct mu-law. */
function testAudio(frames: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: frames * 160 }, (_, i) => (i * 37 + seed * 11 + 5) & 0xff);
}

function framesOf(audio: Uint8Array, bytes = 160): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < audio.length; i += bytes) out.push(audio.subarray(i, i + bytes));
  return out;
}

/** An ingest after `connected` and `start`, its script and its blocks. */
function streaming() {
  const { sink, blocks } = collectingSink();
  const ingest = new MediaIngest({ blockSamples: BLOCK_SAMPLES, sink });
  const script = new TwilioScript();
  const call = {
    ingest,
    script,
    blocks,
    /** The caller's clock: real time by default (one frame = 20 ms). */
    nowMs: 1_000_000,
    /** One message in, as the adapter does it: a media frame returned is taken at `nowMs`. */
    send(text: string | ArrayBuffer): IngestEvent {
      const e = ingest.receive(text);
      if (e.event === "media") ingest.takeAudio(e, call.nowMs);
      return e;
    },
    /** Frames of `audio`, one per `msPerFrame` of the caller's clock. */
    play(audio: Uint8Array, msPerFrame = 20): void {
      for (const f of framesOf(audio)) {
        expect(call.send(script.media(f)).event).toBe("media");
        call.nowMs += msPerFrame;
      }
    },
    /** Every sample the blocks hold, in order. */
    pcm(): Int16Array {
      return concat(...blocks.map((b) => b.pcm));
    },
  };
  expect(call.send(script.connected()).event).toBe("connected");
  expect(call.send(script.start()).event).toBe("start");
  return call;
}

function concat(...parts: (Uint8Array | Int16Array)[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p instanceof Int16Array ? p : decodeMulaw(p), o);
    o += p.length;
  }
  return out;
}

describe("the README's bad-input table, as values", () => {
  it("malformed JSON, not an object, a missing or a bad field: counted under its kind, the call goes on", () => {
    const call = streaming();
    const audio = testAudio(10, 1);
    call.play(audio.subarray(0, 800));
    const bad = [
      '{"event":"media", "media": {',
      "[1,2,3]",
      JSON.stringify({ event: "media", sequenceNumber: "9", streamSid: STREAM_SID }),
      JSON.stringify({ event: "media", sequenceNumber: "x", streamSid: STREAM_SID, media: {} }),
    ];
    for (const text of bad) expect(call.send(text)).toEqual({ event: "ignored" });
    call.play(audio.subarray(800));
    call.ingest.finish();
    expect(call.ingest.counters().bad).toEqual({
      malformed_json: 1,
      not_an_object: 1,
      missing_field: 1,
      bad_field: 1,
    });
    expect(call.ingest.takeNotices().map((n) => [n.kind, n.message])).toEqual([
      ["malformed_json", "message is not JSON (28 characters)"],
      ["not_an_object", "message is not a JSON object"],
      ["missing_field", "media: media is missing"],
      ["bad_field", 'media: sequenceNumber is "x", expected a decimal string'],
    ]);
    expect(call.pcm()).toEqual(decodeMulaw(audio));
  });

  it("an unknown event: counted as unknown_event and ignored", () => {
    const call = streaming();
    const audio = testAudio(10, 2);
    call.play(audio.subarray(0, 800));
    const wave = JSON.stringify({ event: "wave", sequenceNumber: "99", streamSid: STREAM_SID });
    expect(call.send(wave)).toEqual({ event: "ignored" });
    call.play(audio.subarray(800));
    expect(call.ingest.counters().bad).toEqual({ unknown_event: 1 });
    expect(call.pcm()).toEqual(decodeMulaw(audio));
  });

  it("a binary frame: counted as binary_frame and ignored, never audio", () => {
    const call = streaming();
    const audio = testAudio(10, 3);
    call.play(audio.subarray(0, 800));
    expect(call.send(testAudio(1, 4).slice().buffer)).toEqual({ event: "ignored" });
    call.play(audio.subarray(800));
    expect(call.ingest.counters()).toMatchObject({ bad: { binary_frame: 1 }, framesIn: 10, audioMs: 200 });
    expect(call.ingest.takeNotices()[0]?.message).toBe(
      "Twilio sends JSON text frames only; a binary frame was ignored",
    );
    expect(call.pcm()).toEqual(decodeMulaw(audio));
  });

  it("a message over 64 KiB: counted as too_large, the socket must close with 1009; what came before is kept", () => {
    const call = streaming();
    const audio = testAudio(12, 5);
    call.play(audio);
    const huge = JSON.stringify({ event: "media", padding: "x".repeat(65 * 1024) });
    expect(call.send(huge)).toEqual({ event: "close", code: 1009, reason: "message too big" });
    call.ingest.finish();
    expect(call.ingest.counters().bad).toEqual({ too_large: 1 });
    expect(call.ingest.takeNotices()[0]?.message).toBe(
      `message of ${huge.length} bytes is over the 65536-byte limit; closing`,
    );
    expect(call.blocks.map((b) => b.pcm.length)).toEqual([800, 800, 320]);
    expect(call.pcm()).toEqual(decodeMulaw(audio));
  });

  it("media before start: counted as media_before_start and dropped; the audio after start is taken", () => {
    const { sink, blocks } = collectingSink();
    const ingest = new MediaIngest({ blockSamples: BLOCK_SAMPLES, sink });
    const script = new TwilioScript();
    ingest.receive(script.connected());
    expect(ingest.receive(script.media(testAudio(1, 6)))).toEqual({ event: "ignored" });
    expect(ingest.streaming).toBe(false);
    expect(ingest.receive(script.start()).event).toBe("start");
    const audio = testAudio(10, 7);
    for (const f of framesOf(audio)) {
      const e = ingest.receive(script.media(f));
      if (e.event === "media") ingest.takeAudio(e, 0);
    }
    expect(ingest.counters()).toMatchObject({ bad: { media_before_start: 1 }, framesIn: 10, audioMs: 200 });
    expect(concat(...blocks.map((b) => b.pcm))).toEqual(decodeMulaw(audio));
  });

  it("a payload that is not base64: 20 ms of silence in its place keeps audio time, counted as concealed", () => {
    const call = streaming();
    const [before, after] = [testAudio(7, 8), testAudio(7, 9)];
    call.play(before);
    expect(call.send(call.script.media(new Uint8Array(160), { payload: "not*base64!" })).event).toBe("media");
    call.play(after);
    call.ingest.finish();
    // 15 frames of time: the silence sits exactly where the bad frame was
    expect(call.blocks.map((b) => b.startSample)).toEqual([0, 800, 1600]);
    expect(call.pcm()).toEqual(concat(before, new Int16Array(160), after));
    expect(call.ingest.counters()).toMatchObject({
      bad: { payload_not_base64: 1 },
      framesConcealed: 1,
      framesIn: 15,
      audioMs: 300,
      gapFilledMs: 0,
      gapFillRefusedMs: 0,
    });
  });

  it("payloads that are not 160 bytes: used as they are, counted as payload_not_160_bytes", () => {
    const call = streaming();
    const audio = testAudio(7, 10);
    call.send(call.script.media(audio.subarray(0, 80)));
    call.send(call.script.media(audio.subarray(80, 400)));
    call.play(audio.subarray(400, 1040));
    call.ingest.finish();
    expect(call.ingest.counters()).toMatchObject({ bad: { payload_not_160_bytes: 2 }, audioMs: 130, gapFilledMs: 0 });
    expect(call.ingest.takeNotices().map((n) => n.message)).toEqual([
      "media payload is 80 bytes, expected 160; used as is",
      "media payload is 320 bytes, expected 160; used as is",
    ]);
    expect(call.pcm()).toEqual(decodeMulaw(audio.subarray(0, 1040)));
  });

  it("a client faster than real time: every frame delivered, aheadOfRealtimeMsMax says by how much", () => {
    const call = streaming();
    const audio = testAudio(250, 11);
    call.play(audio, 1); // 5 s of audio in a quarter of a second
    const c = call.ingest.counters();
    expect(c.framesIn).toBe(250);
    // after frame k: 20k ms of audio, k - 1 ms of the caller's clock, less one frame
    expect(c.aheadOfRealtimeMsMax).toBe(19 * 250 - 19);
    expect(c.bad).toEqual({});
    expect(call.ingest.takeNotices()).toEqual([
      { kind: "ahead_of_realtime", message: "client sends faster than real time", fields: { aheadMs: 1007 } },
    ]);
    expect(call.pcm()).toEqual(decodeMulaw(audio));
  });

  it("a client that vanishes mid-call: finishing the stream flushes all audio received, the short block too", () => {
    const call = streaming();
    // two whole blocks and a partial one
    const audio = testAudio(13, 12);
    call.play(audio);
    expect(call.blocks.length).toBe(2);
    call.ingest.finish();
    expect(call.blocks.map((b) => b.pcm.length)).toEqual([800, 800, 480]);
    expect(call.pcm()).toEqual(decodeMulaw(audio));
    // and nothing is taken after the end
    expect(call.send(call.script.media(testAudio(1, 13)))).toEqual({ event: "ignored" });
    expect(call.ingest.counters().audioMs).toBe(260);
  });

  it("a bad or missing signature: the upgrade's X-Twilio-Signature does not validate (HTTP 403 before any socket)", async () => {
    const url = "wss://edge.example/twilio/stream/CA1";
    const good = await computeTwilioSignature("auth-token", url);
    expect(await validateTwilioSignature("auth-token", good, url)).toBe(true);
    expect(
      await validateTwilioSignature(
        "auth-token",
        good.replace(/^./, (c) => (c === "A" ? "B" : "A")),
        url,
      ),
    ).toBe(false);
    expect(await validateTwilioSignature("auth-token", null, url)).toBe(false);
  });

  it("a wrong ozen_token: counted as bad_token, the socket must close with 1008, no audio is taken after", () => {
    const call = streaming();
    expect(call.ingest.rejectStart()).toEqual({ event: "close", code: 1008, reason: "bad call token" });
    expect(call.send(call.script.media(testAudio(1, 14)))).toEqual({ event: "ignored" });
    call.ingest.finish();
    expect(call.blocks).toEqual([]);
    expect(call.ingest.counters().bad).toEqual({ bad_token: 1, media_before_start: 1 });
    expect(call.ingest.takeNotices()[0]?.message).toBe("start has no valid ozen_token parameter; closing");
  });
});

describe("the stream's rules", () => {
  it("fills a hole in Twilio's media timestamps with silence and counts the sequence gap", () => {
    const call = streaming();
    const [before, after] = [testAudio(5, 15), testAudio(8, 16)];
    call.play(before);
    call.script.lose(2); // two frames Twilio numbered and stamped but never delivered
    call.play(after);
    expect(call.ingest.counters()).toMatchObject({
      gapFilledMs: 40,
      sequenceGaps: 1,
      sequenceMissing: 2,
      audioMs: 300,
      bad: {},
    });
    expect(call.pcm()).toEqual(concat(before, new Int16Array(320), after));
    expect(call.ingest.takeNotices()).toEqual([
      {
        kind: "media_gap_filled",
        message: "media timestamps jumped: frames were lost before the edge; filled with silence",
        fields: { gapMs: 40 },
      },
    ]);
  });

  it(`does not fill a jump over MAX_GAP_FILL_MS (${MAX_GAP_FILL_MS} ms): a clock reset, not lost audio`, () => {
    const call = streaming();
    call.play(testAudio(5, 17));
    call.script.timestampMs += MAX_GAP_FILL_MS + 20;
    call.play(testAudio(5, 18));
    expect(call.ingest.counters()).toMatchObject({ gapFilledMs: 0, audioMs: 200 });
  });

  it("fills no more silence than wall time passed since the first frame, plus the slack; counts the rest", () => {
    const call = streaming();
    call.play(testAudio(1, 30), 1);
    // 500 frames, each stamped 5 s after the last, sent 1 ms apart: 0.5 s of wall time
    for (let i = 0; i < 500; i++) {
      call.script.timestampMs += MAX_GAP_FILL_MS - 20;
      expect(call.send(call.script.media(testAudio(1, 31))).event).toBe("media");
      call.nowMs += 1;
    }
    const c = call.ingest.counters();
    expect(c.gapFilledMs + c.gapFillRefusedMs).toBe(500 * (MAX_GAP_FILL_MS - 20));
    // the first hole takes what the slack leaves (1 ms passed, 20 ms of audio in); then none fits
    expect(c.gapFilledMs).toBe(1 + GAP_FILL_SLACK_MS - 20);
    expect(c.audioMs).toBe(c.gapFilledMs + 501 * 20);
    const kinds = call.ingest.takeNotices().map((n) => n.kind);
    expect(kinds).toContain("gap_fill_refused");
  });

  it("fills a hole in part when only part of it fits in the time that passed", () => {
    const call = streaming();
    call.play(testAudio(5, 32)); // 100 ms of audio over 100 ms of wall time
    call.script.timestampMs += 3000; // a 3 s hole, with no more wall time passed than the audio so far
    call.play(testAudio(1, 33));
    // room: 100 ms elapsed + the slack - 100 ms of audio
    expect(call.ingest.counters()).toMatchObject({
      gapFilledMs: GAP_FILL_SLACK_MS,
      gapFillRefusedMs: 3000 - GAP_FILL_SLACK_MS,
      audioMs: 100 + GAP_FILL_SLACK_MS + 20,
    });
    expect(call.ingest.takeNotices()).toEqual([
      {
        kind: "gap_fill_refused",
        message: "media timestamps jumped further than the time that passed; the hole was not filled past real time",
        fields: { gapMs: 3000, refusedMs: 3000 - GAP_FILL_SLACK_MS },
      },
      {
        kind: "media_gap_filled",
        message: "media timestamps jumped: frames were lost before the edge; filled with silence",
        fields: { gapMs: GAP_FILL_SLACK_MS },
      },
    ]);
  });

  it("fills a whole hole when the wall time it stands for has passed", () => {
    const call = streaming();
    call.play(testAudio(5, 34));
    call.script.timestampMs += 3000;
    call.nowMs += 3000; // the frames were lost upstream while the time went by
    call.play(testAudio(1, 35));
    expect(call.ingest.counters()).toMatchObject({ gapFilledMs: 3000, gapFillRefusedMs: 0, audioMs: 3120 });
  });

  it("drops and counts messages of another streamSid: its media never joins the call, its stop does not end it", () => {
    const call = streaming();
    const audio = testAudio(10, 36);
    call.play(audio.subarray(0, 800));
    // a second stream's messages, numbered and stamped on their own
    const intruder = new TwilioScript();
    const other = (text: string) => text.replace(STREAM_SID, "MZ" + "f".repeat(32));
    intruder.timestampMs = call.script.timestampMs;
    expect(call.send(other(intruder.media(testAudio(1, 37))))).toEqual({ event: "ignored" });
    expect(call.send(other(intruder.dtmf("1")))).toEqual({ event: "ignored" });
    expect(call.send(other(intruder.stop()))).toEqual({ event: "ignored" });
    call.play(audio.subarray(800));
    call.ingest.finish();
    expect(call.pcm()).toEqual(decodeMulaw(audio));
    expect(call.ingest.counters()).toMatchObject({ bad: { other_stream_sid: 3 }, framesIn: 10, dtmf: 0 });
    expect(call.ingest.takeNotices()[0]?.message).toBe(
      "media of another stream (streamSid is not this call's); dropped",
    );
  });

  it("ignores an empty payload, counting payload_empty, without moving audio time", () => {
    const call = streaming();
    call.play(testAudio(5, 19));
    expect(call.send(call.script.media(new Uint8Array(0))).event).toBe("media");
    call.play(testAudio(5, 20));
    expect(call.ingest.counters()).toMatchObject({ bad: { payload_empty: 1 }, audioMs: 200, gapFilledMs: 0 });
  });

  it("counts and ignores media of another track", () => {
    const call = streaming();
    expect(call.send(call.script.media(testAudio(1, 21), { track: "outbound" }))).toEqual({ event: "ignored" });
    expect(call.ingest.counters()).toMatchObject({ otherTrackFrames: 1, framesIn: 0, audioMs: 0, bad: {} });
  });

  it("ignores a second start, counting second_start", () => {
    const call = streaming();
    expect(call.send(call.script.start())).toEqual({ event: "ignored" });
    expect(call.ingest.counters().bad).toEqual({ second_start: 1 });
    expect(call.ingest.streaming).toBe(true);
  });

  it("passes stop, marks and dtmf on to the caller, counting dtmf", () => {
    const call = streaming();
    expect(call.send(call.script.dtmf("5"))).toMatchObject({ event: "dtmf", dtmf: { digit: "5" } });
    expect(call.send(call.script.stop())).toMatchObject({ event: "stop", streamSid: STREAM_SID });
    expect(call.ingest.counters()).toMatchObject({ dtmf: 1, sequenceGaps: 0 });
  });

  it("names the sequenceNumber of the last frame taken (what a block's ack mark carries)", () => {
    const call = streaming();
    call.play(testAudio(5, 22));
    // connected has no number; start is 1, the frames 2..6
    expect(call.ingest.lastMediaSequence).toBe(6);
  });

  it("logs nothing for a well-behaved call at real time", () => {
    const call = streaming();
    call.play(testAudio(50, 23));
    call.send(call.script.stop());
    call.ingest.finish();
    expect(call.ingest.takeNotices()).toEqual([]);
    expect(call.ingest.counters()).toMatchObject({ bad: {}, framesIn: 50, audioMs: 1000, aheadOfRealtimeMsMax: 0 });
  });
});

describe("properties", () => {
  it("any split of the audio into payloads reaches the blocks bit-exact, with continuous block starts", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 4000 }),
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 30 }),
        (audio, sizes) => {
          const call = streaming();
          for (let i = 0, k = 0; i < audio.length; k++) {
            const n = sizes[k % sizes.length]!;
            call.send(call.script.media(audio.subarray(i, i + n)));
            i += n;
          }
          call.ingest.finish();
          expect(call.pcm()).toEqual(decodeMulaw(audio));
          let start = 0;
          for (const b of call.blocks) {
            expect(b.startSample).toBe(start);
            start += b.pcm.length;
          }
          expect(call.ingest.counters().gapFilledMs).toBe(0);
        },
      ),
    );
  });

  it("never throws on any text or bytes, and counts each message it does not pass on", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.json(),
            fc.uint8Array().map((b) => b.slice().buffer),
            fc
              .record({ event: fc.constantFrom("media", "start", "stop", "mark"), media: fc.anything() })
              .map((v) => JSON.stringify(v)),
          ),
        ),
        (messages) => {
          const call = streaming();
          const counted = () => {
            const c = call.ingest.counters();
            return Object.values(c.bad).reduce((a, b) => a + b, 0) + c.otherTrackFrames;
          };
          for (const m of messages) {
            const before = counted();
            const e = call.send(m);
            expect(counted() - before).toBe(e.event === "ignored" ? 1 : 0);
          }
          call.ingest.finish();
        },
      ),
    );
  });
});
