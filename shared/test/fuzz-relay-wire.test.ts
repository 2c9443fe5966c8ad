/**
 * Fuzzing the relay wire decoder (`relay/wire.ts`: `decodeAudioFrame`, `parseEdgeToRunner`,
 * `parseRunnerToEdge`) within a time budget per target (`fuzz.ts`): random bytes and text, and
 * valid frames and messages a little wrong. Properties: nothing throws; every rejection is an
 * error value with a message; what is accepted has the declared types; valid ones round-trip.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_CALL_ID_BYTES,
  checkPhrases,
  decodeAudioFrame,
  encodeAudioFrame,
  encodeControl,
  joinStable,
  parseEdgeToRunner,
  parseRunnerToEdge,
} from "../src/index.js";
import type { EdgeToRunner, RelayControl, RelayParseResult, RunnerToEdge, TranscriptEvent } from "../src/index.js";
import {
  byteEdit,
  fuzzParams,
  fuzzTimeoutMs,
  jsonEdit,
  mutateBytes,
  mutateJson,
  mutateText,
  textEdit,
} from "./fuzz.js";

type Check = [string, boolean];

const isStr = (v: unknown) => typeof v === "string";
const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** What is wrong with an accepted control message against its declared type, or undefined. */
function typeProblem(m: RelayControl): string | undefined {
  const o = m as unknown as Record<string, unknown>;
  const checks: Check[] = [["v", o["v"] === 1]];
  switch (m.type) {
    case "start":
      checks.push(
        ["callSid", isStr(m.callSid)],
        ["streamSid", isStr(m.streamSid)],
        ["accountSid", isStr(m.accountSid)],
        ["sampleRateHz", isNum(m.sampleRateHz)],
        ["encoding", m.encoding === "pcm16le"],
        ["blockMs", isNum(m.blockMs)],
        ["tracks", Array.isArray(m.tracks) && m.tracks.every(isStr)],
        [
          "customParameters",
          typeof m.customParameters === "object" &&
            m.customParameters !== null &&
            !Array.isArray(m.customParameters) &&
            Object.values(m.customParameters).every(isStr),
        ],
        ["resumeFromSeq", isNum(m.resumeFromSeq)],
        ["phrases", m.phrases === undefined || checkPhrases(m.phrases, "phrases").ok],
      );
      break;
    case "stop":
      checks.push(["reason", isStr(m.reason)], ["lastSeq", isNum(m.lastSeq)]);
      break;
    case "ping":
    case "pong":
      checks.push(["id", isNum(m.id)]);
      break;
    case "ack":
      checks.push(["seq", isNum(m.seq)], ["committedSeq", m.committedSeq === undefined || isNum(m.committedSeq)]);
      break;
    case "clear":
      break;
    case "goaway":
      checks.push(["reason", isStr(m.reason)]);
      break;
    case "event":
      checks.push(["event", typeof m.event === "object" && m.event !== null && isStr(m.event.type)]);
      break;
    case "error":
      checks.push(["code", isStr(m.code)], ["message", isStr(m.message)]);
      break;
    default:
      return `type ${JSON.stringify((m as { type: unknown }).type)}`;
  }
  return checks.find(([, ok]) => !ok)?.[0];
}

function expectWellFormed(r: RelayParseResult<RelayControl>, allowed: ReadonlySet<string>): void {
  if (r.ok) {
    expect(allowed.has(r.message.type)).toBe(true);
    expect(typeProblem(r.message)).toBeUndefined();
  } else {
    expect(typeof r.message).toBe("string");
    expect(r.message.length).toBeGreaterThan(0);
  }
}

const EDGE_TO_RUNNER = new Set(["start", "stop", "ping", "pong", "error"]);
const RUNNER_TO_EDGE = new Set(["ack", "clear", "goaway", "event", "ping", "pong", "error"]);

// ---- valid messages ----

const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: "grapheme", maxLength: 12 }));
const count = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const ms = fc.oneof(fc.nat({ max: 600_000 }), fc.double({ min: 0, max: 1e9, noNaN: true, noDefaultInfinity: true }));
const params = fc
  .array(fc.tuple(fc.oneof(text, fc.constantFrom("__proto__", "ozen_language")), text), { maxLength: 4 })
  .map((e) => Object.fromEntries(e));

type Body<T> = T extends unknown ? Omit<T, "v"> : never;

const edgeToRunner: fc.Arbitrary<Body<EdgeToRunner>> = fc.oneof(
  fc.record(
    {
      type: fc.constant("start" as const),
      callSid: text,
      streamSid: text,
      accountSid: text,
      sampleRateHz: fc.constantFrom(8000, 16000),
      encoding: fc.constant("pcm16le" as const),
      blockMs: fc.integer({ min: 20, max: 1000 }),
      tracks: fc.array(text, { maxLength: 3 }),
      customParameters: params,
      resumeFromSeq: count,
      phrases: fc.array(fc.stringMatching(/^[a-z\u05d0-\u05ea]{1,8}( [a-z]{1,8})?$/), { maxLength: 4 }),
    },
    {
      requiredKeys: [
        "type",
        "callSid",
        "streamSid",
        "accountSid",
        "sampleRateHz",
        "encoding",
        "blockMs",
        "tracks",
        "customParameters",
        "resumeFromSeq",
      ],
    },
  ),
  fc.record({ type: fc.constant("stop" as const), reason: text, lastSeq: fc.integer({ min: -1, max: 1e9 }) }),
  fc.record({ type: fc.constantFrom("ping" as const, "pong" as const), id: count }),
  fc.record({ type: fc.constant("error" as const), code: text, message: text }),
);

const callSid = fc.stringMatching(/^CA[0-9a-f]{8}$/);

/** Valid transcript events, in the form `parseTranscriptEvent` builds (so they round-trip exactly). */
const transcriptEvent: fc.Arbitrary<TranscriptEvent> = callSid.chain((sid) => {
  const base = { v: fc.constant(1 as const), callSid: fc.constant(sid), wallMs: ms };
  const utteranceId = fc.integer({ min: 1, max: 10_000 }).map((n) => `${sid}:u${n}`);
  const words = fc.array(fc.stringMatching(/^[a-z\u05d0-\u05ea]{1,6}$/), { maxLength: 4 }).map((w) => w.join(" "));
  return fc.oneof(
    fc.record({ ...base, type: fc.constant("call.started" as const), engine: fc.constantFrom("null", "whisper") }),
    fc.record({ ...base, type: fc.constant("call.ended" as const), reason: text }),
    fc.record({
      ...base,
      type: fc.constant("engine.switched" as const),
      from: fc.constant("google-v1"),
      to: fc.constant("whisper"),
      reason: text,
    }),
    fc
      .record({ ...base, utteranceId, seq: fc.nat(), stable: words, volatile: words, revised: fc.boolean(), end: ms })
      .map(({ end, ...p }): TranscriptEvent => ({
        ...p,
        type: "partial",
        text: joinStable(p.stable, p.volatile),
        audioEndMs: end,
      })),
    fc
      .record({ ...base, utteranceId, start: ms, len: ms, text: words, engine: fc.constantFrom("whisper") })
      .map(({ start, len, ...f }): TranscriptEvent => ({
        ...f,
        type: "final",
        rawText: f.text,
        stable: true,
        audioStartMs: start,
        audioEndMs: start + len,
      })),
  );
});

const runnerToEdge: fc.Arbitrary<Body<RunnerToEdge>> = fc.oneof(
  fc.record({ type: fc.constant("ack" as const), seq: count }),
  fc.record({ type: fc.constant("ack" as const), seq: count, committedSeq: count }),
  fc.record({ type: fc.constant("clear" as const) }),
  fc.record({ type: fc.constant("goaway" as const), reason: text }),
  fc.record({ type: fc.constant("event" as const), event: transcriptEvent }),
  fc.record({ type: fc.constantFrom("ping" as const, "pong" as const), id: count }),
  fc.record({ type: fc.constant("error" as const), code: text, message: text }),
);

const callId = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: MAX_CALL_ID_BYTES,
});
const audioFrame = fc.record({
  callId,
  seq: fc.nat({ max: 0xffffffff }),
  startSample: fc.nat({ max: 0xffffffff }),
  sampleRateHz: fc.constantFrom(8000, 16000),
  pcm: fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 1600 }).map((s) => Int16Array.from(s)),
});

describe("fuzz: relay audio frames (decodeAudioFrame)", () => {
  it(
    "valid frames round-trip, at any offset in a larger buffer",
    () => {
      fc.assert(
        fc.property(audioFrame, fc.nat({ max: 7 }), (frame, offset) => {
          const bytes = new Uint8Array(encodeAudioFrame(frame));
          const pool = new Uint8Array(bytes.length + offset + 3);
          pool.set(bytes, offset);
          const r = decodeAudioFrame(pool.subarray(offset, offset + bytes.length));
          expect(r.ok && r.frame).toEqual(frame);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "any bytes, and valid frames with header bytes flipped, cut or spliced: a consistent frame or a message",
    () => {
      const anyFrame = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc
          .tuple(audioFrame, fc.array(byteEdit, { minLength: 1, maxLength: 4 }))
          .map(([f, edits]) => mutateBytes(new Uint8Array(encodeAudioFrame(f)), edits, 16 + f.callId.length + 1)),
      );
      fc.assert(
        fc.property(anyFrame, (bytes) => {
          const r = decodeAudioFrame(bytes);
          if (!r.ok) {
            expect(r.message.length).toBeGreaterThan(0);
            return;
          }
          const { callId: id, seq, startSample, sampleRateHz, pcm } = r.frame;
          expect(id.length).toBeGreaterThanOrEqual(1);
          expect(id.length).toBeLessThanOrEqual(MAX_CALL_ID_BYTES);
          for (const n of [seq, startSample]) expect(n >>> 0).toBe(n);
          expect(sampleRateHz & 0xffff).toBe(sampleRateHz);
          expect(pcm).toBeInstanceOf(Int16Array);
          // the header and the samples account for every byte
          expect(((16 + id.length + 1) & ~1) + pcm.length * 2).toBe(bytes.length);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});

describe("fuzz: relay control messages (parseEdgeToRunner, parseRunnerToEdge)", () => {
  it(
    "valid messages round-trip, each in its own direction",
    () => {
      fc.assert(
        fc.property(edgeToRunner, runnerToEdge, (e2r, r2e) => {
          expect(parseEdgeToRunner(encodeControl(e2r))).toEqual({ ok: true, message: { v: 1, ...e2r } });
          expect(parseRunnerToEdge(encodeControl(r2e))).toEqual({ ok: true, message: { v: 1, ...r2e } });
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "any text is a well-typed message of the direction, or a rejection with a message",
    () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: "binary" })), (t) => {
          expectWellFormed(parseEdgeToRunner(t), EDGE_TO_RUNNER);
          expectWellFormed(parseRunnerToEdge(t), RUNNER_TO_EDGE);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "valid messages with fields dropped, retyped or replaced are never accepted mistyped",
    () => {
      const mutated = fc
        .tuple(fc.oneof(edgeToRunner, runnerToEdge), fc.array(jsonEdit, { minLength: 1, maxLength: 4 }))
        .map(([m, edits]) => JSON.stringify(mutateJson(JSON.parse(encodeControl(m)), edits)) ?? "");
      fc.assert(
        fc.property(mutated, (t) => {
          expectWellFormed(parseEdgeToRunner(t), EDGE_TO_RUNNER);
          expectWellFormed(parseRunnerToEdge(t), RUNNER_TO_EDGE);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "valid messages cut, spliced or with characters swapped never throw",
    () => {
      const mutated = fc
        .tuple(fc.oneof(edgeToRunner, runnerToEdge), fc.array(textEdit, { minLength: 1, maxLength: 4 }))
        .map(([m, edits]) => mutateText(encodeControl(m), edits));
      fc.assert(
        fc.property(mutated, (t) => {
          expectWellFormed(parseEdgeToRunner(t), EDGE_TO_RUNNER);
          expectWellFormed(parseRunnerToEdge(t), RUNNER_TO_EDGE);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});

describe("found by fuzzing", () => {
  const start = {
    type: "start",
    callSid: "CA1",
    streamSid: "MZ1",
    accountSid: "AC1",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: 100,
    tracks: ["inbound"],
    customParameters: { ozen_language: "he" },
    resumeFromSeq: 0,
  };
  const asText = (m: object) => JSON.stringify({ v: 1, ...m });

  it("rejects a start whose tracks are not all strings (it was accepted)", () => {
    expect(parseEdgeToRunner(asText({ ...start, tracks: ["", 0] }))).toEqual({
      ok: false,
      message: "relay start.tracks is missing or not a list of strings",
    });
  });

  it("rejects a start whose custom parameters are not all strings, or whose encoding is another", () => {
    expect(parseEdgeToRunner(asText({ ...start, customParameters: { ozen_language: 5 } }))).toEqual({
      ok: false,
      message: "relay start.customParameters is missing or not an object of strings",
    });
    expect(parseEdgeToRunner(asText({ ...start, encoding: "mulaw" }))).toEqual({
      ok: false,
      message: 'relay start.encoding is missing or not "pcm16le"',
    });
  });

  it("rejects an ack whose committedSeq is there but not a number, and takes one without it", () => {
    expect(parseRunnerToEdge(asText({ type: "ack", seq: 4, committedSeq: "2" }))).toEqual({
      ok: false,
      message: "relay ack.committedSeq is not a number",
    });
    expect(parseRunnerToEdge(asText({ type: "ack", seq: 4 }))).toEqual({
      ok: true,
      message: { v: 1, type: "ack", seq: 4 },
    });
  });
});
