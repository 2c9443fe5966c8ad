import alawmulaw from "alawmulaw";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BlockAssembler,
  DropOldestQueue,
  MULAW_DECODE_TABLE,
  SequenceTracker,
  computeTwilioSignature,
  decodeAudioFrame,
  decodeBase64Into,
  decodeMulaw,
  decodeMulawInto,
  encodeAudioFrame,
  encodeBase64,
  encodeControl,
  encodeMulaw,
  histogramPercentile,
  outboundClear,
  outboundMark,
  outboundMedia,
  parseEdgeToRunner,
  parseRunnerToEdge,
  parseStreamTwiml,
  parseTwilioMessage,
  serializeInbound,
  streamTwiml,
  validateTwilioSignature,
} from "../src/index.js";
import type { BlockSink } from "../src/index.js";

/** G.711 mu-law decode written from the standard, independent of the code under test. */
function g711Decode(code: number): number {
  const u = ~code & 0xff;
  const t = ((u & 0x0f) << 3) + 0x84;
  const mag = (t << ((u & 0x70) >> 4)) - 0x84;
  return u & 0x80 ? -mag : mag;
}

describe("mu-law codec", () => {
  it("decodes all 256 codes exactly like the alawmulaw package", () => {
    // the package returns -0 for code 0x7f; an Int16 sample has one zero
    for (let code = 0; code < 256; code++)
      expect(MULAW_DECODE_TABLE[code]).toBe(alawmulaw.mulaw.decodeSample(code) | 0);
  });

  it("decodes all 256 codes exactly like the G.711 formula", () => {
    for (let code = 0; code < 256; code++) expect(MULAW_DECODE_TABLE[code]).toBe(g711Decode(code) | 0);
  });

  it("encodes every 16-bit sample exactly like the alawmulaw package", () => {
    const all = new Int16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i - 32768;
    const ours = encodeMulaw(all);
    for (let i = 0; i < 65536; i++) {
      // the package returns ~code unmasked; its array encoder stores it in a Uint8Array
      const ref = alawmulaw.mulaw.encodeSample(i - 32768) & 0xff;
      if (ours[i] !== ref) throw new Error(`sample ${i - 32768}: ours ${ours[i]}, alawmulaw ${ref}`);
    }
  });

  it("round-trips every code except negative zero (0x7f), which encodes as 0xff", () => {
    for (let code = 0; code < 256; code++) {
      const back = encodeMulaw(decodeMulaw(Uint8Array.of(code)))[0];
      expect(back).toBe(code === 0x7f ? 0xff : code);
    }
  });

  it("decodes into a reused buffer at an offset without touching the rest", () => {
    const out = new Int16Array(8).fill(7);
    expect(decodeMulawInto(Uint8Array.of(0x00, 0xff), out, 3)).toBe(2);
    expect([...out]).toEqual([7, 7, 7, -32124, 0, 7, 7, 7]);
  });
});

describe("base64", () => {
  it("decodes like Buffer for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const out = new Uint8Array(400);
        const n = decodeBase64Into(Buffer.from(bytes).toString("base64"), out);
        expect(n).toBe(bytes.length);
        expect(out.subarray(0, n)).toEqual(bytes);
      }),
    );
  });

  it("encodes like Buffer for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        expect(encodeBase64(bytes)).toBe(Buffer.from(bytes).toString("base64"));
      }),
    );
  });

  it.each([
    ["a bad character", "ab$d"],
    ["a length that is not a multiple of 4", "abc"],
    ["padding in the middle", "ab==abcd"],
    ["a non-ASCII character", "abcé"],
    ["a lone padded quantum", "a==="],
  ])("rejects %s with -1", (_what, s) => {
    expect(decodeBase64Into(s, new Uint8Array(64))).toBe(-1);
  });

  it("rejects input that does not fit the output buffer", () => {
    expect(decodeBase64Into(Buffer.alloc(10).toString("base64"), new Uint8Array(9))).toBe(-1);
  });
});

describe("BlockAssembler", () => {
  function collect(blockSamples: number) {
    const blocks: { seq: number; start: number; pcm: Int16Array }[] = [];
    let open: Int16Array | undefined;
    const sink: BlockSink = {
      open: (_seq, _start, capacity) => (open = new Int16Array(capacity)),
      seal: (seq, start, samples) => blocks.push({ seq, start, pcm: open!.slice(0, samples) }),
    };
    return { asm: new BlockAssembler(blockSamples, sink), blocks };
  }

  it("cuts any chunking of the input into the same full blocks, decoded by table", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 500 }), { maxLength: 20 }), (chunks) => {
        const { asm, blocks } = collect(800);
        for (const c of chunks) asm.pushMulaw(c);
        asm.flush();
        const all = Uint8Array.from(chunks.flatMap((c) => [...c]));
        const decoded = decodeMulaw(all);
        let at = 0;
        blocks.forEach((b, i) => {
          expect(b.seq).toBe(i);
          expect(b.start).toBe(at);
          if (i < blocks.length - 1) expect(b.pcm.length).toBe(800);
          expect(b.pcm).toEqual(decoded.subarray(at, at + b.pcm.length));
          at += b.pcm.length;
        });
        expect(at).toBe(all.length);
      }),
    );
  });

  it("adds silence that advances the audio clock", () => {
    const { asm, blocks } = collect(160);
    asm.pushMulaw(new Uint8Array(100).fill(0x00));
    asm.pushSilence(100);
    expect(asm.samplesIn).toBe(200);
    expect(blocks).toHaveLength(1);
    expect([...blocks[0]!.pcm.subarray(100)]).toEqual(new Array(60).fill(0));
  });
});

const start = {
  event: "start",
  sequenceNumber: "1",
  start: {
    customParameters: { ozen_token: "t" },
    accountSid: "AC00000000000000000000000000000000",
    streamSid: "9e7ee906-377b-408f-a852-eebfb834422a",
    callSid: "CA00000000000000000000000000000001",
    tracks: ["inbound"],
    mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
    somethingNew: true,
  },
  streamSid: "9e7ee906-377b-408f-a852-eebfb834422a",
};

describe("Twilio messages", () => {
  it("parses start with string counters, any key order and unknown fields", () => {
    const r = parseTwilioMessage(JSON.stringify(start));
    expect(r.ok && r.message.event === "start" && r.message).toMatchObject({
      sequenceNumber: 1,
      start: {
        callSid: "CA00000000000000000000000000000001",
        customParameters: { ozen_token: "t" },
        tracks: ["inbound"],
      },
    });
  });

  it("parses media with numbers from strings and keeps the payload encoded", () => {
    const r = parseTwilioMessage(
      '{"media":{"payload":"//8=","timestamp":"99","chunk":"1","track":"inbound"},"event":"media","sequenceNumber":"2","streamSid":"MZ1"}',
    );
    expect(r.ok && r.message).toEqual({
      event: "media",
      sequenceNumber: 2,
      streamSid: "MZ1",
      media: { track: "inbound", chunk: 1, timestamp: 99, payload: "//8=" },
    });
  });

  it("parses connected of any version, dtmf, mark and stop", () => {
    for (const m of [
      { event: "connected", protocol: "Call", version: "0.2.0" },
      { event: "dtmf", sequenceNumber: "5", streamSid: "MZ1", dtmf: { track: "inbound_track", digit: "1" } },
      { event: "mark", sequenceNumber: "6", streamSid: "MZ1", mark: { name: "greeting" } },
      { event: "stop", sequenceNumber: "7", streamSid: "MZ1", stop: { accountSid: "AC1", callSid: "CA1" } },
    ]) {
      const r = parseTwilioMessage(JSON.stringify(m));
      expect(r.ok && r.message.event).toBe(m.event);
    }
  });

  it.each([
    ["malformed_json", "{not json"],
    ["not_an_object", "[1,2]"],
    ["unknown_event", '{"event":"hello"}'],
    ["missing_field", '{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"chunk":"1","timestamp":"1"}}'],
    [
      "bad_field",
      '{"event":"media","sequenceNumber":"x2","streamSid":"MZ1","media":{"chunk":"1","timestamp":"1","payload":""}}',
    ],
    ["too_large", JSON.stringify({ event: "media", pad: "x".repeat(70_000) })],
  ])("reports %s as a value, not an exception", (kind, text) => {
    const r = parseTwilioMessage(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.kind).toBe(kind);
      expect(r.message.length).toBeGreaterThan(5);
    }
  });

  it("names the field that is wrong", () => {
    const r = parseTwilioMessage(
      '{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"chunk":"one","timestamp":"1","payload":""}}',
    );
    expect(!r.ok && r.message).toContain("media.chunk");
  });

  it("never throws, whatever arrives", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        parseTwilioMessage(text);
      }),
    );
  });

  it("writes inbound messages the way Twilio does and reads them back", () => {
    const media = {
      event: "media" as const,
      sequenceNumber: 3,
      streamSid: "MZ1",
      media: { track: "inbound", chunk: 2, timestamp: 119, payload: "AAA=" },
    };
    const text = serializeInbound(media);
    expect(JSON.parse(text).media.timestamp).toBe("119");
    expect(JSON.parse(text).sequenceNumber).toBe("3");
    const r = parseTwilioMessage(text);
    expect(r.ok && r.message).toEqual(media);
  });

  it("writes Twilio's outbound media, mark and clear shapes", () => {
    expect(JSON.parse(outboundMedia("MZ1", "AA=="))).toEqual({
      event: "media",
      streamSid: "MZ1",
      media: { payload: "AA==" },
    });
    expect(JSON.parse(outboundMark("MZ1", "g"))).toEqual({ event: "mark", streamSid: "MZ1", mark: { name: "g" } });
    expect(JSON.parse(outboundClear("MZ1"))).toEqual({ event: "clear", streamSid: "MZ1" });
  });

  it("counts each gap in sequence numbers once, with the numbers missing", () => {
    const t = new SequenceTracker();
    for (const n of [1, 2, 5, 6, 7, 10, 9]) t.observe(n);
    expect({ gaps: t.gaps, missing: t.missing, outOfOrder: t.outOfOrder }).toEqual({
      gaps: 2,
      missing: 4,
      outOfOrder: 1,
    });
  });
});

describe("TwiML", () => {
  it("connects a stream by path with escaped parameters and reads back the same", () => {
    const xml = streamTwiml({
      mode: "connect",
      streamUrl: "wss://e.example/twilio/stream/CA1",
      parameters: { ozen_token: 'a"b<c' },
    });
    expect(xml).toContain("<Connect><Stream");
    expect(parseStreamTwiml(xml)).toEqual({
      mode: "connect",
      streamUrl: "wss://e.example/twilio/stream/CA1",
      parameters: { ozen_token: 'a"b<c' },
    });
  });

  it("forks with <Start><Stream> followed by a pause", () => {
    const xml = streamTwiml({ mode: "start", streamUrl: "wss://e/x", parameters: {} });
    expect(xml).toMatch(/<Start><Stream url="wss:\/\/e\/x"><\/Stream><\/Start><Pause length="\d+"\/>/);
  });

  it("refuses a stream URL with a query string (Twilio rejects it)", () => {
    expect(() => streamTwiml({ mode: "connect", streamUrl: "wss://e/x?a=1", parameters: {} })).toThrow(/query string/);
  });
});

describe("X-Twilio-Signature", () => {
  const params = {
    CallSid: "CA1234567890ABCDE",
    Digits: "1234",
    From: "+14158675309",
    To: "+18005551212",
    Caller: "+14158675309",
  };

  it("matches Twilio's own test vector for a webhook", async () => {
    expect(await computeTwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)).toBe(
      "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    );
  });

  it("matches the vectors for a WebSocket upgrade (wss URL, no params)", async () => {
    expect(await computeTwilioSignature("12345", "wss://example.com/media")).toBe("7PR3qMkpDyEJtMrVOY/LDyNq8J8=");
    expect(await computeTwilioSignature("12345", "https://example.com/media")).toBe("6HZQ7Cq/dSYDCAiy3qRA6PZfACI=");
  });

  it("accepts the right signature and refuses wrong token, https-for-wss and none", async () => {
    expect(await validateTwilioSignature("12345", "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", "wss://example.com/media")).toBe(
      true,
    );
    expect(await validateTwilioSignature("54321", "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", "wss://example.com/media")).toBe(
      false,
    );
    expect(await validateTwilioSignature("12345", "6HZQ7Cq/dSYDCAiy3qRA6PZfACI=", "wss://example.com/media")).toBe(
      false,
    );
    expect(await validateTwilioSignature("12345", null, "wss://example.com/media")).toBe(false);
  });

  it("accepts a webhook signed over the URL with its default port", async () => {
    const withPort = await computeTwilioSignature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params);
    expect(
      await validateTwilioSignature("12345", withPort, "https://mycompany.com/myapp.php?foo=1&bar=2", params),
    ).toBe(true);
  });
});

describe("relay wire format", () => {
  it("round-trips audio frames of any call id and length", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."CAabcdef0123456789_-"), minLength: 1, maxLength: 64 }),
        fc.nat(),
        fc.nat(),
        fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 2000 }),
        (callId, seq, startSample, samples) => {
          const pcm = Int16Array.from(samples);
          const r = decodeAudioFrame(encodeAudioFrame({ callId, seq, startSample, sampleRateHz: 8000, pcm }));
          expect(r.ok && r.frame).toEqual({ callId, seq, startSample, sampleRateHz: 8000, pcm });
        },
      ),
    );
  });

  it("reads a frame that sits at an odd offset inside a larger buffer (a Node Buffer pool)", () => {
    const frame = new Uint8Array(
      encodeAudioFrame({ callId: "CA1", seq: 7, startSample: 800, sampleRateHz: 8000, pcm: Int16Array.of(1, -2, 3) }),
    );
    const pool = Buffer.alloc(frame.length + 9);
    pool.set(frame, 5);
    const r = decodeAudioFrame(pool.subarray(5, 5 + frame.length));
    expect(r.ok && r.frame).toEqual({
      callId: "CA1",
      seq: 7,
      startSample: 800,
      sampleRateHz: 8000,
      pcm: Int16Array.of(1, -2, 3),
    });
  });

  it("rejects another version, another kind, a short header and odd PCM", () => {
    const good = new Uint8Array(
      encodeAudioFrame({ callId: "CA1", seq: 0, startSample: 0, sampleRateHz: 8000, pcm: new Int16Array(4) }),
    );
    const v2 = good.slice();
    v2[0] = 2;
    const kind = good.slice();
    kind[1] = 9;
    expect(decodeAudioFrame(v2)).toMatchObject({ ok: false, message: expect.stringContaining("version 2") });
    expect(decodeAudioFrame(kind)).toMatchObject({ ok: false, message: expect.stringContaining("not audio") });
    expect(decodeAudioFrame(good.slice(0, 10)).ok).toBe(false);
    expect(decodeAudioFrame(good.slice(0, good.length - 1)).ok).toBe(false);
  });

  it("parses control messages in their direction only", () => {
    expect(parseRunnerToEdge(encodeControl({ type: "ack", seq: 4, committedSeq: 2 }))).toEqual({
      ok: true,
      message: { v: 1, type: "ack", seq: 4, committedSeq: 2 },
    });
    expect(parseEdgeToRunner(encodeControl({ type: "ack", seq: 4 }))).toMatchObject({
      ok: false,
      message: expect.stringContaining("ack"),
    });
    expect(parseEdgeToRunner('{"v":2,"type":"stop"}')).toMatchObject({
      ok: false,
      message: expect.stringContaining("version"),
    });
    expect(parseEdgeToRunner('{"v":1,"type":"stop","reason":"x"}')).toMatchObject({
      ok: false,
      message: expect.stringContaining("lastSeq"),
    });
  });

  it("validates a relayed transcript event once, in the parse: typed after it, an error value before", () => {
    const ended = { v: 1, type: "call.ended", callSid: "CA1", wallMs: 5, reason: "caller_hung_up" };
    expect(parseRunnerToEdge(JSON.stringify({ v: 1, type: "event", event: { ...ended, extra: 1 } }))).toEqual({
      ok: true,
      message: { v: 1, type: "event", event: ended },
    });
    expect(parseRunnerToEdge(JSON.stringify({ v: 1, type: "event", event: { ...ended, wallMs: "x" } }))).toEqual({
      ok: false,
      invalidEvent: true,
      message: expect.stringContaining("call.ended.wallMs"),
    });
    expect(parseRunnerToEdge('{"v":1,"type":"event","event":7}')).toMatchObject({ ok: false });
    expect(parseRunnerToEdge('{"v":1,"type":"event","event":7}')).not.toHaveProperty("invalidEvent");
  });
});

describe("metrics", () => {
  it("drops the oldest item when full and counts it", () => {
    const q = new DropOldestQueue<number>(3);
    for (const n of [1, 2, 3]) expect(q.push(n)).toBeUndefined();
    expect(q.push(4)).toBe(1);
    expect([...q]).toEqual([2, 3, 4]);
    expect(q.dropped).toBe(1);
    expect([0, 1, 2, 3, -1].map((i) => q.at(i))).toEqual([2, 3, 4, undefined, undefined]);
  });

  it("takes nearest-rank percentiles of a millisecond histogram", () => {
    expect(histogramPercentile({ "0": 50, "1": 40, "20": 10 }, 0.5)).toBe(0);
    expect(histogramPercentile({ "0": 50, "1": 40, "20": 10 }, 0.99)).toBe(20);
    expect(histogramPercentile({}, 0.5)).toBeNull();
  });
});
