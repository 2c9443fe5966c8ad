/**
 * Fuzzing the Twilio side (`parse.ts`, the pure ingest `ingest.ts`) within a time budget per
 * target (`fuzz.ts`): random text and JSON, and valid messages a little wrong (fields dropped,
 * retyped, replaced by near misses; text cut and spliced). Properties: nothing throws; every
 * rejection is an error value with a kind and a message; what is accepted has the declared
 * types; valid messages round-trip.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MediaIngest, encodeBase64, parseTwilioMessage, parseTwilioValue, serializeInbound } from "../src/index.js";
import type { BlockSink, ParseResult, TwilioInbound } from "../src/index.js";
import { fuzzParams, fuzzTimeoutMs, jsonEdit, mutateJson, mutateText, textEdit } from "./fuzz.js";

const PARSE_ERROR_KINDS = new Set([
  "malformed_json",
  "not_an_object",
  "unknown_event",
  "missing_field",
  "bad_field",
  "too_large",
]);

/** What is wrong with `m` as a `TwilioInbound`, or undefined: the types the parser promises. */
function typeProblem(m: TwilioInbound): string | undefined {
  const counter = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  const isStr = (v: unknown) => typeof v === "string";
  const strMap = (v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every(isStr);
  const checks: [string, boolean][] = [];
  switch (m.event) {
    case "connected":
      checks.push(["protocol", isStr(m.protocol)], ["version", isStr(m.version)]);
      break;
    case "start":
      checks.push(
        ["sequenceNumber", counter(m.sequenceNumber)],
        ["streamSid", isStr(m.streamSid)],
        ["start.accountSid", isStr(m.start.accountSid)],
        ["start.streamSid", isStr(m.start.streamSid)],
        ["start.callSid", isStr(m.start.callSid)],
        ["start.tracks", Array.isArray(m.start.tracks) && m.start.tracks.every(isStr)],
        ["start.customParameters", strMap(m.start.customParameters)],
        ["start.mediaFormat.encoding", isStr(m.start.mediaFormat.encoding)],
        ["start.mediaFormat.sampleRate", Number.isFinite(m.start.mediaFormat.sampleRate)],
        ["start.mediaFormat.channels", Number.isFinite(m.start.mediaFormat.channels)],
      );
      break;
    case "media":
      checks.push(
        ["sequenceNumber", counter(m.sequenceNumber)],
        ["streamSid", isStr(m.streamSid)],
        ["media.track", isStr(m.media.track)],
        ["media.chunk", counter(m.media.chunk)],
        ["media.timestamp", counter(m.media.timestamp)],
        ["media.payload", isStr(m.media.payload)],
      );
      break;
    case "dtmf":
      checks.push(
        ["sequenceNumber", counter(m.sequenceNumber)],
        ["dtmf.track", isStr(m.dtmf.track)],
        ["dtmf.digit", isStr(m.dtmf.digit)],
      );
      break;
    case "mark":
      checks.push(["sequenceNumber", counter(m.sequenceNumber)], ["mark.name", isStr(m.mark.name)]);
      break;
    case "stop":
      checks.push(
        ["sequenceNumber", counter(m.sequenceNumber)],
        ["stop.accountSid", isStr(m.stop.accountSid)],
        ["stop.callSid", isStr(m.stop.callSid)],
      );
      break;
    default:
      return `event ${JSON.stringify((m as { event: unknown }).event)}`;
  }
  return checks.find(([, ok]) => !ok)?.[0];
}

/** A parse result keeps the parser's promise: a well-typed message, or a kind and a message. */
function expectWellFormed(r: ParseResult): void {
  if (r.ok) {
    expect(typeProblem(r.message)).toBeUndefined();
  } else {
    expect(PARSE_ERROR_KINDS.has(r.kind)).toBe(true);
    expect(typeof r.message).toBe("string");
    expect(r.message.length).toBeGreaterThan(0);
  }
}

// ---- valid messages, as Twilio sends them (counters as decimal strings on the wire) ----

const counter = fc.oneof(fc.nat({ max: 10_000 }), fc.integer({ min: 0, max: 999_999_999_999_999 }));
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }));
const sid = fc.oneof(text, fc.stringMatching(/^(CA|MZ|AC)[0-9a-f]{32}$/));
const paramName = fc.oneof(text, fc.constantFrom("__proto__", "constructor", "toString", "ozen_token", ""));
/** Built with `Object.fromEntries`, as `JSON.parse` builds them: any name is an own key. */
const params = fc.array(fc.tuple(paramName, text), { maxLength: 5 }).map((e) => Object.fromEntries(e));

const inbound: fc.Arbitrary<TwilioInbound> = fc.oneof(
  fc.record({ event: fc.constant("connected" as const), protocol: text, version: text }),
  fc.record({
    event: fc.constant("start" as const),
    sequenceNumber: counter,
    streamSid: sid,
    start: fc.record({
      accountSid: sid,
      streamSid: sid,
      callSid: sid,
      tracks: fc.array(text, { maxLength: 3 }),
      customParameters: params,
      mediaFormat: fc.record({ encoding: text, sampleRate: fc.integer(), channels: fc.integer() }),
    }),
  }),
  fc.record({
    event: fc.constant("media" as const),
    sequenceNumber: counter,
    streamSid: sid,
    media: fc.record({
      track: text,
      chunk: counter,
      timestamp: counter,
      payload: fc.oneof(text, fc.uint8Array({ maxLength: 200 }).map(encodeBase64)),
    }),
  }),
  fc.record({
    event: fc.constant("dtmf" as const),
    sequenceNumber: counter,
    streamSid: sid,
    dtmf: fc.record({ track: text, digit: text }),
  }),
  fc.record({
    event: fc.constant("mark" as const),
    sequenceNumber: counter,
    streamSid: sid,
    mark: fc.record({ name: text }),
  }),
  fc.record({
    event: fc.constant("stop" as const),
    sequenceNumber: counter,
    streamSid: sid,
    stop: fc.record({ accountSid: sid, callSid: sid }),
  }),
);

describe("fuzz: Twilio message parser", () => {
  it(
    "valid messages round-trip through the wire form",
    () => {
      fc.assert(
        fc.property(inbound, (m) => {
          const r = parseTwilioMessage(serializeInbound(m));
          expect(r).toEqual({ ok: true, message: m });
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "any text is a well-typed message or a rejection with a kind and a message",
    () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.json()), (t) => {
          expectWellFormed(parseTwilioMessage(t));
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "any JSON value is a well-typed message or a rejection (parseTwilioValue)",
    () => {
      fc.assert(
        fc.property(fc.jsonValue(), (v) => {
          expectWellFormed(parseTwilioValue(v));
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "valid messages with fields dropped, retyped or replaced never throw and are never mistyped",
    () => {
      fc.assert(
        fc.property(inbound, fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), (m, edits) => {
          const value = mutateJson(JSON.parse(serializeInbound(m)), edits);
          expectWellFormed(parseTwilioValue(value));
          expectWellFormed(parseTwilioMessage(JSON.stringify(value) ?? ""));
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "valid messages cut, spliced or with characters swapped never throw",
    () => {
      fc.assert(
        fc.property(inbound, fc.array(textEdit, { minLength: 1, maxLength: 4 }), (m, edits) => {
          expectWellFormed(parseTwilioMessage(mutateText(serializeInbound(m), edits)));
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});

// ---- the ingest: a stream of messages, some valid, some not ----

const STREAM_SID = "MZ00000000000000000000000000000001";

/** A stream's messages: a mostly valid call (start, media with moving stamps, marks, stop), some of it wrong. */
const streamMessages = fc
  .array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("media" as const),
          bytes: fc.integer({ min: 0, max: 400 }),
          stepMs: fc.integer({ min: -40, max: 6000 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("start" as const) }) },
      { weight: 1, arbitrary: inbound.map((m) => ({ kind: "other" as const, m })) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("text" as const), t: fc.string() }) },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant("binary" as const), b: fc.uint8Array({ maxLength: 64 }) }),
      },
    ),
    { maxLength: 60 },
  )
  .chain((steps) =>
    fc.tuple(
      fc.constant(steps),
      fc.array(fc.option(fc.array(jsonEdit, { minLength: 1, maxLength: 2 }), { freq: 4 }), {
        minLength: steps.length,
        maxLength: steps.length,
      }),
      fc.array(fc.option(fc.array(textEdit, { minLength: 1, maxLength: 2 }), { freq: 8 }), {
        minLength: steps.length,
        maxLength: steps.length,
      }),
    ),
  );

describe("fuzz: Twilio ingest (MediaIngest)", () => {
  it(
    "any stream of messages is taken without a throw, with a notice for each problem and continuous blocks",
    () => {
      fc.assert(
        fc.property(streamMessages, fc.boolean(), ([steps, jsonEdits, textEdits], startFirst) => {
          const blocks: { seq: number; startSample: number; samples: number; capacity: number }[] = [];
          let capacity = 0;
          const sink: BlockSink = {
            open: (_seq, _start, cap) => new Int16Array((capacity = cap)),
            seal: (seq, startSample, samples) => blocks.push({ seq, startSample, samples, capacity }),
          };
          const ingest = new MediaIngest({ blockSamples: 800, sink });
          let seqNo = 1;
          let timestamp = 0;
          let nowMs = 0;
          const script: (string | Uint8Array)[] = [];
          const start: TwilioInbound = {
            event: "start",
            sequenceNumber: seqNo++,
            streamSid: STREAM_SID,
            start: {
              accountSid: "AC1",
              streamSid: STREAM_SID,
              callSid: "CA1",
              tracks: ["inbound"],
              customParameters: {},
              mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
            },
          };
          if (startFirst) script.push(serializeInbound(start));
          steps.forEach((s, i) => {
            let t: string | Uint8Array;
            if (s.kind === "media") {
              timestamp = Math.max(0, timestamp + s.stepMs);
              t = serializeInbound({
                event: "media",
                sequenceNumber: seqNo++,
                streamSid: STREAM_SID,
                media: {
                  track: "inbound",
                  chunk: i + 1,
                  timestamp,
                  payload: encodeBase64(new Uint8Array(s.bytes).fill(i)),
                },
              });
            } else if (s.kind === "start") t = serializeInbound({ ...start, sequenceNumber: seqNo++ });
            else if (s.kind === "other") t = serializeInbound(s.m);
            else if (s.kind === "text") t = s.t;
            else t = s.b;
            if (typeof t === "string" && jsonEdits[i]) {
              try {
                t = JSON.stringify(mutateJson(JSON.parse(t), jsonEdits[i]!)) ?? "";
              } catch {
                // not JSON: left as is
              }
            }
            if (typeof t === "string" && textEdits[i]) t = mutateText(t, textEdits[i]!);
            script.push(t);
          });
          for (const m of script) {
            nowMs += 20;
            const e = ingest.receive(typeof m === "string" ? m : m.slice().buffer);
            expect(["ignored", "close", "connected", "start", "media", "dtmf", "mark", "stop"]).toContain(e.event);
            if (e.event === "media") ingest.takeAudio(e, nowMs);
            for (const n of ingest.takeNotices()) {
              expect(typeof n.message).toBe("string");
              expect(n.message.length).toBeGreaterThan(0);
            }
            if (e.event === "close") break;
          }
          ingest.finish();
          // blocks: numbered from 0, each starting where the last ended, never over capacity
          let at = 0;
          blocks.forEach((b, i) => {
            expect(b.seq).toBe(i);
            expect(b.startSample).toBe(at);
            expect(b.samples).toBeGreaterThan(0);
            expect(b.samples).toBeLessThanOrEqual(b.capacity);
            expect(Number.isInteger(b.samples)).toBe(true);
            at += b.samples;
          });
          expect(at).toBe(ingest.audioMs * 8);
          const c = ingest.counters();
          expect(Object.values(c.bad).every((n) => Number.isInteger(n) && n > 0)).toBe(true);
          expect(c.framesConcealed).toBeLessThanOrEqual(c.framesIn);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});

describe("found by fuzzing", () => {
  it("keeps a custom parameter named __proto__ (it was silently lost)", () => {
    const wire =
      '{"event":"start","sequenceNumber":"0","streamSid":"MZ1","start":{"accountSid":"","streamSid":"MZ1",' +
      '"callSid":"CA1","tracks":[],"customParameters":{"__proto__":"","lang":"he"},' +
      '"mediaFormat":{"encoding":"","sampleRate":0,"channels":0}}}';
    const r = parseTwilioMessage(wire);
    expect(r.ok && r.message.event === "start" && Object.entries(r.message.start.customParameters)).toEqual([
      ["__proto__", ""],
      ["lang", "he"],
    ]);
    // and no prototype was touched on the way
    expect(r.ok && Object.getPrototypeOf(r.message.event === "start" && r.message.start.customParameters)).toBe(
      Object.prototype,
    );
  });
});
