/**
 * Fuzzing the runner's side of the whisper worker protocol (`engines/whisper/protocol.ts`) within
 * a time budget per target (shared/test/fuzz.ts): random bytes cut anywhere, valid frame streams
 * with bodies damaged, and worker messages a little wrong. Properties: nothing throws; every
 * rejection is an error value with a message; a damaged body never desyncs the frames after it;
 * what `parseWorkerMessage` accepts has the fields the runner reads; valid frames round-trip.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FRAME_AUDIO,
  FRAME_JSON,
  FrameDecoder,
  encodeAudioFrame,
  encodeJsonFrame,
  parseWorkerMessage,
} from "../src/engines/whisper/protocol.js";
import type { AudioFrame, DecodedFrame, JsonMessage, WorkerMessage } from "../src/engines/whisper/protocol.js";
import { byteEdit, fuzzParams, fuzzTimeoutMs, jsonEdit, mutateBytes, mutateJson } from "../../shared/test/fuzz.js";

/** A decoded frame keeps the decoder's promise: a typed frame, or a message. */
function expectWellFormed(d: DecodedFrame): void {
  if (!d.ok) {
    expect(typeof d.message).toBe("string");
    expect(d.message.length).toBeGreaterThan(0);
    return;
  }
  if (d.frame.kind === "json") {
    const m = d.frame.message;
    expect(typeof m === "object" && m !== null && !Array.isArray(m)).toBe(true);
    expect(typeof m.type).toBe("string");
  } else {
    const a = d.frame.audio;
    expect(typeof a.key).toBe("string");
    expect(Number.isFinite(a.startSample) && a.startSample >= 0).toBe(true);
    expect(a.pcm).toBeInstanceOf(Int16Array);
  }
}

/** Feeds `bytes` cut at `cuts` (positions modulo the length) and returns every frame. */
function decodeCut(decoder: FrameDecoder, bytes: Uint8Array, cuts: readonly number[]): DecodedFrame[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: DecodedFrame[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    const got = decoder.push(bytes.subarray(at, p));
    if (decoder.broken) expect(decoder.push(new Uint8Array([1, 2, 3]))).toEqual([]);
    out.push(...got);
    at = p;
  }
  return out;
}

const text = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 10 }));
const key = fc.oneof(fc.stringMatching(/^CA[0-9a-f]{6}(#\d)?$/), text);
const ms = fc.oneof(fc.nat({ max: 600_000 }), fc.double({ min: 0, max: 1e7, noNaN: true, noDefaultInfinity: true }));

/** Messages as the worker sends them (server.py). */
const workerMessage: fc.Arbitrary<WorkerMessage> = fc.oneof(
  fc.record({
    type: fc.constant("ready" as const),
    model: text,
    path: text,
    multilingual: fc.boolean(),
    device: fc.constantFrom("cpu", "cuda"),
    compute_type: fc.constantFrom("int8", "float16"),
    pool: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ type: fc.constant("fatal" as const), code: text, message: text }),
  fc.record({ type: fc.constant("vad" as const), key, event: fc.constantFrom("start" as const, "end" as const), ms }),
  fc.record({
    type: fc.constant("partial" as const),
    key,
    utt: fc.nat(),
    text,
    stable: text,
    audio_start_ms: ms,
    audio_end_ms: ms,
    decode_ms: ms,
  }),
  fc.record({
    type: fc.constant("final" as const),
    key,
    utt: fc.nat(),
    text,
    audio_start_ms: ms,
    audio_end_ms: ms,
    decode_ms: ms,
    beam: fc.integer({ min: 1, max: 5 }),
  }),
  fc.record({ type: fc.constant("closed" as const), key }),
  fc.record(
    { type: fc.constant("error" as const), key, code: text, message: text },
    { requiredKeys: ["type", "code", "message"] },
  ),
  fc.record({ type: fc.constant("stats" as const), sessions: fc.nat(), decodes: fc.nat() }),
);

const audio = fc.record({
  key: fc.oneof(key, fc.string({ unit: "grapheme", maxLength: 30 })),
  startSample: fc.oneof(fc.nat({ max: 2 ** 40 }), fc.double({ min: 0, max: 1e15, noNaN: true })),
  pcm: fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 400 }).map((a) => Int16Array.from(a)),
});

type AnyFrame = { kind: "json"; message: JsonMessage } | { kind: "audio"; audio: AudioFrame };

const frame: fc.Arbitrary<AnyFrame> = fc.oneof(
  workerMessage.map((m) => ({ kind: "json" as const, message: m as unknown as JsonMessage })),
  audio.map((a) => ({ kind: "audio" as const, audio: a })),
);

function encode(f: AnyFrame): Uint8Array {
  return f.kind === "json"
    ? encodeJsonFrame(f.message)
    : encodeAudioFrame(f.audio.key, f.audio.startSample, f.audio.pcm);
}

/** The fields the runner reads from each accepted message (worker.ts, session.ts), typed. */
function typeProblem(m: WorkerMessage): string | undefined {
  const o = m as unknown as Record<string, unknown>;
  const str = (k: string): [string, boolean] => [k, typeof o[k] === "string"];
  const num = (k: string): [string, boolean] => [k, typeof o[k] === "number" && Number.isFinite(o[k])];
  const checks: [string, boolean][] = [];
  switch (m.type) {
    case "ready":
      checks.push(str("model"));
      break;
    case "fatal":
      checks.push(str("code"), str("message"));
      break;
    case "vad":
      checks.push(str("key"), ["event", m.event === "start" || m.event === "end"], num("ms"));
      break;
    case "partial":
      checks.push(str("key"), num("utt"), str("text"), str("stable"), num("audio_start_ms"), num("audio_end_ms"));
      break;
    case "final":
      checks.push(str("key"), num("utt"), str("text"), num("audio_start_ms"), num("audio_end_ms"));
      break;
    case "closed":
      checks.push(str("key"));
      break;
    case "error":
      checks.push(str("code"));
      break;
    case "stats":
      break;
    default:
      return `type ${JSON.stringify((m as { type: unknown }).type)}`;
  }
  return checks.find(([, ok]) => !ok)?.[0];
}

describe("fuzz: whisper worker frames (FrameDecoder)", () => {
  it(
    "valid frames round-trip however the bytes are cut",
    () => {
      fc.assert(
        fc.property(fc.array(frame, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encode));
          const out = decodeCut(new FrameDecoder(), bytes, cuts);
          expect(out.length).toBe(frames.length);
          out.forEach((d, i) => {
            const f = frames[i]!;
            if (f.kind === "json") expect(d).toEqual({ ok: true, frame: f });
            else
              expect(
                d.ok && d.frame.kind === "audio" && { ...d.frame.audio, pcm: Array.from(d.frame.audio.pcm) },
              ).toEqual({ ...f.audio, pcm: Array.from(f.audio.pcm) });
          });
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "any bytes, cut anywhere: typed frames or messages, and nothing after the decoder breaks",
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.uint8Array({ maxLength: 400 }),
            fc.array(frame, { maxLength: 3 }).map((f) => Buffer.concat(f.map(encode))),
          ),
          fc.array(byteEdit, { maxLength: 4 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          (bytes, edits, cuts) => {
            const decoder = new FrameDecoder(4096);
            for (const d of decodeCut(decoder, mutateBytes(bytes, edits), cuts)) expectWellFormed(d);
            expect(decoder.pendingBytes).toBeGreaterThanOrEqual(0);
          },
        ),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "a frame whose body is damaged is one bad or odd frame: the frames after it decode exactly",
    () => {
      fc.assert(
        fc.property(
          frame,
          fc.array(
            byteEdit.filter((e) => e.op !== "truncate" && e.op !== "insert"),
            { minLength: 1, maxLength: 4 },
          ),
          fc.array(frame, { minLength: 1, maxLength: 3 }),
          fc.constantFrom(FRAME_JSON, FRAME_AUDIO, 0, 7, 0xff),
          (victim, edits, after, kind) => {
            const bad = encode(victim);
            // the length prefix stays; the kind byte and the body take the damage
            const body = mutateBytes(bad.subarray(4), edits);
            if (edits.length % 2 === 0) body[0] = kind;
            const damaged = Buffer.concat([bad.subarray(0, 4), body]);
            const out = new FrameDecoder().push(Buffer.concat([damaged, ...after.map(encode)]));
            expect(out.length).toBe(1 + after.length);
            expectWellFormed(out[0]!);
            expect(out.slice(1).map((d) => d.ok)).toEqual(after.map(() => true));
          },
        ),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});

describe("fuzz: worker messages (parseWorkerMessage)", () => {
  it(
    "messages as the worker sends them are accepted as they are",
    () => {
      fc.assert(
        fc.property(workerMessage, (m) => {
          const d = new FrameDecoder().push(encodeJsonFrame(m as unknown as JsonMessage));
          const f = d[0]!;
          expect(f.ok && f.frame.kind === "json" && parseWorkerMessage(f.frame.message)).toEqual({
            ok: true,
            message: m,
          });
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    "messages with fields dropped, retyped or replaced: the fields the runner reads are typed, or a message says why not",
    () => {
      const anyMessage = fc.oneof(
        fc
          .tuple(workerMessage, fc.array(jsonEdit, { minLength: 1, maxLength: 4 }))
          .map(([m, edits]) => mutateJson(m, edits)),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
      );
      fc.assert(
        fc.property(anyMessage, (value) => {
          // what reaches parseWorkerMessage has passed the frame decoder: an object with a string type
          const d = new FrameDecoder().push(encodeJsonFrame(value as JsonMessage))[0]!;
          if (!d.ok || d.frame.kind !== "json") return;
          const r = parseWorkerMessage(d.frame.message);
          if (r.ok) expect(typeProblem(r.message)).toBeUndefined();
          else expect(r.message.length).toBeGreaterThan(0);
        }),
        fuzzParams,
      );
    },
    fuzzTimeoutMs(),
  );
});
