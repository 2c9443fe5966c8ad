/**
 * The Google engine on the wire: the official `@google-cloud/speech` client, over an insecure
 * loopback channel, against a gRPC server that loads Google's own protos from the package. It
 * proves the requests the engine writes are what Google's service definitions accept, in v1 and
 * v2, and that results and errors come back through the client as the session expects.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { GoogleEngine } from "../src/engines/google/engine.js";
import type { EngineFinal, EngineInterim } from "../src/engines/engine.js";
import { startSpeechServer, wordBlock } from "../src/testing/google-grpc.js";
import type { SpeechServer } from "../src/testing/google-grpc.js";

let speech: SpeechServer;
let port: number;
let seen: SpeechServer["seen"];

beforeAll(async () => {
  speech = await startSpeechServer();
  port = speech.port;
  seen = speech.seen;
});

afterAll(() => speech?.close());

const start: RelayStart = {
  v: 1,
  type: "start",
  callSid: "CA1",
  streamSid: "MZ1",
  accountSid: "AC1",
  sampleRateHz: 8000,
  encoding: "pcm16le",
  blockMs: 100,
  tracks: ["inbound"],
  customParameters: { ozen_phrases: "אוזן|Twilio" },
  resumeFromSeq: 0,
};

async function runCall(env: Record<string, string>) {
  const engine = new GoogleEngine(
    loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${port}`, GOOGLE_INSECURE: "true", ...env }),
  );
  const interims: EngineInterim[] = [];
  const finals: EngineFinal[] = [];
  const failures: unknown[] = [];
  const session = engine.open(start, {
    interim: (r) => interims.push(r),
    final: (r) => finals.push(r),
    failed: (f) => failures.push(f),
  });
  for (let i = 0; i < 5; i++) session.feed(new Int16Array(800).fill(i * 100), i * 800);
  const deadline = Date.now() + 5000;
  while (interims.length === 0 && failures.length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await session.end();
  await engine.close();
  return { interims, finals, failures };
}

describe("Google engine on the wire (official client, Google's protos)", () => {
  it("v1: config first, LINEAR16 audio in 100 ms requests, interim then final on half-close", async () => {
    const before = seen.length;
    const { interims, finals, failures } = await runCall({});
    const s = seen[before]!;
    expect(s.api).toBe("v1");
    const config = s.requests[0].streaming_config;
    expect(config.interim_results).toBe(true);
    expect(config.config).toMatchObject({
      encoding: "LINEAR16",
      sample_rate_hertz: 8000,
      language_code: "he-IL",
      model: "telephony",
      enable_automatic_punctuation: false,
      speech_contexts: [{ phrases: ["אוזן", "Twilio"], boost: 10 }],
    });
    expect(s.requests[0].audio_content ?? null).toBeNull();
    expect(s.requests.slice(1).map((r: any) => r.audio_content.length)).toEqual([1600, 1600, 1600, 1600, 1600]);
    expect(interims[0]).toEqual({ segments: [{ text: "שלום", stability: expect.closeTo(0.8, 5) }], audioEndMs: 300 });
    expect(finals).toEqual([
      { text: "שלום עולם", confidence: expect.closeTo(0.93, 5), audioStartMs: 0, audioEndMs: 500 },
    ]);
    expect(failures).toEqual([]);
  });

  it("reports the profile it asks Google for: fast without automatic punctuation, accurate with it", async () => {
    for (const [profile, punctuation] of [
      ["fast", false],
      ["accurate", true],
    ] as const) {
      const before = seen.length;
      const engine = new GoogleEngine(
        loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${port}`, GOOGLE_INSECURE: "true", GOOGLE_PROFILE: profile }),
      );
      expect(engine.profile).toEqual({ name: profile, punctuation });
      const session = engine.open(start, { interim() {}, final() {}, failed() {} });
      session.feed(new Int16Array(800), 0);
      await session.end();
      await engine.close();
      expect(seen[before]!.requests[0].streaming_config.config.enable_automatic_punctuation).toBe(punctuation);
    }
  });

  it("v2: recognizer and explicit MULAW decoding first, one byte a sample after", async () => {
    const before = seen.length;
    const { finals } = await runCall({ GOOGLE_API: "v2", GOOGLE_PROJECT: "ozen-test", GOOGLE_ENCODING: "MULAW" });
    const s = seen[before]!;
    expect(s.api).toBe("v2");
    expect(s.requests[0].recognizer).toBe("projects/ozen-test/locations/global/recognizers/_");
    expect(s.requests[0].streaming_config.config).toMatchObject({
      explicit_decoding_config: { encoding: "MULAW", sample_rate_hertz: 8000, audio_channel_count: 1 },
      language_codes: ["iw-IL"],
      model: "telephony",
    });
    expect(s.requests[0].streaming_config.streaming_features.interim_results).toBe(true);
    expect(s.requests.slice(1).map((r: any) => r.audio.length)).toEqual([800, 800, 800, 800, 800]);
    expect(finals[0]).toMatchObject({ text: "שלום עולם", audioEndMs: 500 });
  });

  it("the call's phrases from the relay start reach v1's speech contexts and v2's inline phrase set", async () => {
    const hinted: RelayStart = { ...start, customParameters: {}, phrases: ["Aoife Nakagawa", "אוזן"] };
    for (const api of ["v1", "v2"] as const) {
      const before = seen.length;
      const engine = new GoogleEngine(
        loadGoogleConfig({
          GOOGLE_ENDPOINT: `127.0.0.1:${port}`,
          GOOGLE_INSECURE: "true",
          GOOGLE_API: api,
          GOOGLE_PROJECT: "ozen-test",
          GOOGLE_PHRASES: "ozen",
          GOOGLE_PHRASE_BOOST: "12",
        }),
      );
      const session = engine.open(hinted, { interim() {}, final() {}, failed() {} });
      session.feed(new Int16Array(800), 0);
      await session.end();
      await engine.close();
      const config = seen[before]!.requests[0].streaming_config.config;
      if (api === "v1") {
        expect(config.speech_contexts).toEqual([{ phrases: ["ozen", "Aoife Nakagawa", "אוזן"], boost: 12 }]);
      } else {
        expect(config.adaptation.phrase_sets).toEqual([
          {
            inline_phrase_set: {
              phrases: ["ozen", "Aoife Nakagawa", "אוזן"].map((value) => ({ value, boost: 12 })),
            },
          },
        ]);
      }
    }
  });

  it("moves to the next model when the service answers model-not-supported through the client", async () => {
    speech.unsupportedModels = new Set(["telephony"]);
    const before = seen.length;
    const { finals } = await runCall({ GOOGLE_MODELS: "telephony,latest_long" });
    speech.unsupportedModels = new Set();
    const models = seen.slice(before).map((s) => s.requests[0]?.streaming_config?.config?.model);
    expect(models.slice(0, 2)).toEqual(["telephony", "latest_long"]);
    expect(finals.map((f) => f.text)).toEqual(["שלום עולם"]);
  });

  it("v2: moves down the chain when a model does not exist in the recognizer's location", async () => {
    speech.behaviour.modelsMissingInLocation = new Set(["chirp_3"]);
    const before = seen.length;
    const { finals, failures } = await runCall({
      GOOGLE_API: "v2",
      GOOGLE_PROJECT: "ozen-test",
      GOOGLE_LOCATION: "global",
      GOOGLE_ENDPOINT: `127.0.0.1:${port}`,
      GOOGLE_MODELS: "chirp_3,long",
    });
    speech.behaviour.modelsMissingInLocation = undefined;
    const streams = seen.slice(before);
    expect(streams.map((s) => s.requests[0]?.recognizer)).toEqual([
      "projects/ozen-test/locations/global/recognizers/_",
      "projects/ozen-test/locations/global/recognizers/_",
    ]);
    expect(streams.map((s) => s.requests[0]?.streaming_config?.config?.model)).toEqual(["chirp_3", "long"]);
    expect(finals.map((f) => f.text)).toEqual(["שלום עולם"]);
    expect(failures).toEqual([]);
  });

  it("v2: hands the call over, naming the models, when no model in the chain exists there", async () => {
    speech.behaviour.modelsMissingInLocation = new Set(["chirp_3", "chirp_2"]);
    const { failures } = await runCall({
      GOOGLE_API: "v2",
      GOOGLE_PROJECT: "ozen-test",
      GOOGLE_MODELS: "chirp_3,chirp_2",
    });
    speech.behaviour.modelsMissingInLocation = undefined;
    expect(failures).toEqual([
      {
        code: "model_unsupported",
        message: expect.stringMatching(/chirp_3.*chirp_2.*does not exist in the location named "global"/),
        resumeFromMs: 0,
      },
    ]);
  });

  it("crosses several stream restarts and a dropped stream with every word exactly once", async () => {
    speech.behaviour.wordPerBlock = true;
    speech.behaviour.failOnceAfterRequests = 17;
    const streamsBefore = seen.length;
    const engine = new GoogleEngine(
      loadGoogleConfig({
        GOOGLE_ENDPOINT: `127.0.0.1:${port}`,
        GOOGLE_INSECURE: "true",
        GOOGLE_RESTART_AFTER_S: "1",
        GOOGLE_MAX_STREAM_S: "2",
      }),
    );
    const finals: EngineFinal[] = [];
    const session = engine.open(start, { interim: () => {}, final: (r) => finals.push(r), failed: () => {} });
    const blocks = 60; // 6 s of call audio: at least five restarts at 1 s
    for (let k = 0; k < blocks; k++) {
      session.feed(wordBlock(k), k * 800);
      await new Promise((r) => setTimeout(r, 10));
    }
    const deadline = Date.now() + 5000;
    while (finals.length < blocks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await session.end();
    speech.behaviour.wordPerBlock = false;
    await engine.close();
    const words = finals.map((f) => f.text.trim());
    expect(words).toEqual(Array.from({ length: blocks }, (_, k) => `w${k}`));
    // call times stay continuous across streams
    finals.forEach((f, k) => expect([f.audioStartMs, f.audioEndMs]).toEqual([k * 100, (k + 1) * 100]));
    // the call really went through several streams: five 1 s rollovers and the dropped one
    expect(seen.length - streamsBefore).toBeGreaterThanOrEqual(6);
  });

  it.each([
    ["the 305 s stream limit", "Exceeded maximum allowed stream duration of 305 seconds."],
    [
      "the audio timeout",
      "Audio Timeout Error: Long duration elapsed without audio. Audio should be sent close to real time.",
    ],
  ])("goes on through Google's OUT_OF_RANGE for %s with every word once", async (_what, details) => {
    speech.behaviour.wordPerBlock = true;
    speech.behaviour.failOnceAfterRequests = 8;
    speech.behaviour.failWith = { code: 11, details };
    const engine = new GoogleEngine(
      loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${port}`, GOOGLE_INSECURE: "true" }),
    );
    const finals: EngineFinal[] = [];
    const session = engine.open(start, { interim: () => {}, final: (r) => finals.push(r), failed: () => {} });
    for (let k = 0; k < 20; k++) {
      session.feed(wordBlock(k), k * 800);
      await new Promise((r) => setTimeout(r, 5));
    }
    const deadline = Date.now() + 5000;
    while (finals.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await session.end();
    await engine.close();
    speech.behaviour.wordPerBlock = false;
    expect(finals.map((f) => f.text.trim())).toEqual(Array.from({ length: 20 }, (_, k) => `w${k}`));
  });
});
