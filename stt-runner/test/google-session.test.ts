/**
 * GoogleSession's stream lifecycle (rollover, replay, errors, model chain, keep-alive) driven by
 * scripted streams in memory, so every step is deterministic. The wire protocol itself is tested
 * against the gRPC fake with the official client.
 */
import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { GoogleSession } from "../src/engines/google/session.js";
import type { SpeechStream } from "../src/engines/google/session.js";
import type { EngineFinal, EngineInterim } from "../src/engines/engine.js";

/** One StreamingRecognize call as the session sees it. */
class ScriptedStream extends EventEmitter {
  readonly requests: any[] = [];
  ended = false;
  cancelled = false;
  write(r: unknown): boolean {
    this.requests.push(r);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  cancel(): void {
    this.cancelled = true;
  }
  get config(): any {
    return this.requests[0]?.streamingConfig?.config;
  }
  /** Samples of audio received so far (LINEAR16). */
  get samples(): number {
    return this.requests.slice(1).reduce((n, r) => n + (r.audioContent?.length ?? 0) / 2, 0);
  }
  /** The audio as PCM, to check what was replayed. */
  pcm(): Int16Array {
    const bufs = this.requests.slice(1).map((r) => r.audioContent as Buffer);
    const all = Buffer.concat(bufs);
    return new Int16Array(all.buffer, all.byteOffset, all.length / 2);
  }
  final(text: string, endS: number): void {
    this.emit("data", {
      results: [
        {
          alternatives: [{ transcript: text, confidence: 0.9 }],
          isFinal: true,
          resultEndTime: { seconds: String(Math.floor(endS)), nanos: Math.round((endS % 1) * 1e9) },
        },
      ],
    });
  }
  interim(text: string, endS: number, stability = 0.1): void {
    this.emit("data", {
      results: [
        {
          alternatives: [{ transcript: text }],
          isFinal: false,
          stability,
          resultEndTime: { seconds: String(Math.floor(endS)), nanos: Math.round((endS % 1) * 1e9) },
        },
      ],
    });
  }
  fail(code: number, details: string): void {
    this.emit("error", Object.assign(new Error(details), { code, details }));
  }
  finish(): void {
    this.emit("end");
    this.emit("close");
  }
}

const sessions: GoogleSession[] = [];
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.end()));
});

function setup(env: Record<string, string> = {}) {
  const streams: ScriptedStream[] = [];
  const finals: EngineFinal[] = [];
  const interims: EngineInterim[] = [];
  const failures: { code: string; message: string; resumeFromMs: number }[] = [];
  const config = loadGoogleConfig({
    GOOGLE_RESTART_AFTER_S: "2",
    GOOGLE_MAX_STREAM_S: "4",
    GOOGLE_KEEPALIVE_MS: "8000",
    GOOGLE_DRAIN_TIMEOUT_MS: "200",
    ...env,
  });
  const session = new GoogleSession({
    config,
    phrases: ["שלום", "ozen"],
    listener: { interim: (r) => interims.push(r), final: (r) => finals.push(r), failed: (f) => failures.push(f) },
    openStream: () => {
      const s = new ScriptedStream();
      streams.push(s);
      return s as unknown as SpeechStream;
    },
  });
  sessions.push(session);
  let at = 0;
  /** Feeds `ms` of audio whose samples count up from the current position (so replays are checkable). */
  const feed = (ms: number) => {
    const n = (ms * 8000) / 1000;
    for (let i = 0; i < n; i += 800) {
      const block = Int16Array.from({ length: Math.min(800, n - i) }, (_, k) => ((at + i + k) % 30000) - 15000);
      session.feed(block, at + i);
    }
    at += n;
  };
  return { session, streams, finals, interims, failures, feed, config };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("GoogleSession", () => {
  it("sends the config first, then audio, with the fast telephony profile for Hebrew", () => {
    const { streams, feed } = setup();
    feed(300);
    const s = streams[0]!;
    expect(s.requests[0]).toEqual({
      streamingConfig: {
        config: {
          encoding: "LINEAR16",
          sampleRateHertz: 8000,
          audioChannelCount: 1,
          languageCode: "he-IL",
          maxAlternatives: 1,
          enableAutomaticPunctuation: false,
          model: "telephony",
          speechContexts: [{ phrases: ["שלום", "ozen"], boost: 10 }],
        },
        interimResults: true,
        singleUtterance: false,
      },
    });
    expect(s.requests.slice(1).every((r) => r.audioContent instanceof Buffer && !r.streamingConfig)).toBe(true);
    expect(s.samples).toBe(2400);
  });

  it("builds the v2 request: recognizer, explicit decoding, inline phrase set, iw-IL", () => {
    const { streams, feed } = setup({ GOOGLE_API: "v2", GOOGLE_PROJECT: "proj", GOOGLE_ENCODING: "MULAW" });
    feed(100);
    const first = streams[0]!.requests[0];
    expect(first.recognizer).toBe("projects/proj/locations/global/recognizers/_");
    expect(first.streamingConfig.config).toMatchObject({
      explicitDecodingConfig: { encoding: "MULAW", sampleRateHertz: 8000, audioChannelCount: 1 },
      languageCodes: ["iw-IL"],
      model: "telephony",
      adaptation: {
        phraseSets: [
          {
            inlinePhraseSet: {
              phrases: [
                { value: "שלום", boost: 10 },
                { value: "ozen", boost: 10 },
              ],
            },
          },
        ],
      },
    });
    expect(first.streamingConfig.streamingFeatures).toEqual({ interimResults: true });
    expect(streams[0]!.requests[1].audio).toHaveLength(800); // MULAW: one byte a sample
  });

  it("maps result times to call audio and reports interims and finals", () => {
    const { streams, finals, interims, feed } = setup();
    feed(1000);
    streams[0]!.interim("שלום", 0.5, 0.9);
    streams[0]!.final("שלום לך", 0.8);
    expect(interims[0]).toEqual({ segments: [{ text: "שלום", stability: 0.9 }], audioEndMs: 500 });
    expect(finals[0]).toEqual({ text: "שלום לך", confidence: 0.9, audioStartMs: 0, audioEndMs: 800 });
  });

  it("rolls over at a final after the restart age, draining the old stream and replaying only unfinished audio", async () => {
    const { session, streams, finals, feed } = setup();
    feed(2500);
    streams[0]!.final("one", 2.3);
    expect(streams[0]!.ended).toBe(true); // half-closed, draining
    feed(200); // arrives while draining: kept, not sent
    streams[0]!.final("two", 2.5); // the drain's last final moves the replay point
    streams[0]!.finish();
    await tick();
    expect(streams).toHaveLength(2);
    const s2 = streams[1]!;
    // the new stream starts at 2.5 s of call audio and has exactly the audio after it
    expect(s2.samples).toBe(8000 * 0.2);
    expect(s2.pcm()[0]).toBe(((2.5 * 8000) % 30000) - 15000);
    // its times are mapped back onto the call's clock
    s2.final("three", 0.2);
    expect(finals.map((f) => [f.text, f.audioStartMs, f.audioEndMs])).toEqual([
      ["one", 0, 2300],
      ["two", 2300, 2500],
      ["three", 2500, 2700],
    ]);
    expect(session.stats.rollovers).toBe(1);
    expect(session.audioAtRiskMs).toBe(0);
  });

  it("rolls over before the hard limit even without a final", async () => {
    const { streams, feed } = setup();
    feed(4100);
    expect(streams[0]!.ended).toBe(true);
    streams[0]!.finish();
    await tick();
    expect(streams[1]!.samples).toBe(4100 * 8); // nothing final: everything replays
  });

  it("reconnects after UNAVAILABLE with backoff and replays since the last final", async () => {
    const { session, streams, feed } = setup();
    feed(1000);
    streams[0]!.final("a", 0.6);
    streams[0]!.fail(14, "Connection reset");
    await new Promise((r) => setTimeout(r, 150));
    expect(streams).toHaveLength(2);
    expect(streams[1]!.samples).toBe(0.4 * 8000);
    expect(session.stats.reconnects).toBe(1);
  });

  it("opens a new stream at once on OUT_OF_RANGE (305 s limit or audio timeout)", async () => {
    const { streams, feed } = setup();
    feed(500);
    streams[0]!.fail(11, "Exceeded maximum allowed stream duration of 305 seconds.");
    expect(streams).toHaveLength(2);
    expect(streams[1]!.samples).toBe(4000);
  });

  it("moves down the model chain when Google does not support a model for the language", () => {
    const { session, streams, feed } = setup();
    feed(200);
    streams[0]!.fail(
      3,
      "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
    );
    expect(streams[1]!.config.model).toBe("phone_call");
    expect(streams[1]!.config.useEnhanced).toBe(true);
    streams[1]!.fail(
      3,
      "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
    );
    streams[2]!.fail(
      3,
      "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
    );
    expect(streams[3]!.config.model).toBeUndefined(); // Google's default
    expect(streams[3]!.samples).toBe(1600);
    expect(session.stats.modelFallbacks).toBe(3);
  });

  it("hands the call over when the retry budget is spent, saying where to resume", async () => {
    const { streams, failures, feed } = setup({ GOOGLE_RETRY_BUDGET: "1" });
    feed(1000);
    streams[0]!.final("a", 0.5);
    streams[0]!.fail(14, "down");
    await new Promise((r) => setTimeout(r, 150));
    streams[1]!.fail(14, "still down");
    expect(failures).toEqual([{ code: "grpc_14", message: expect.stringContaining("still down"), resumeFromMs: 500 }]);
  });

  it("fails at once on an error retrying cannot fix", () => {
    const { failures, streams, feed } = setup();
    feed(100);
    streams[0]!.fail(7, "Permission denied on resource project");
    expect(failures[0]).toMatchObject({ code: "grpc_7" });
  });

  it("sends silence while the call's audio stalls and keeps call times continuous", async () => {
    const { streams, finals, feed } = setup({ GOOGLE_KEEPALIVE_MS: "100" });
    feed(500);
    await new Promise((r) => setTimeout(r, 450));
    const s = streams[0]!;
    const kept = s.samples - 4000;
    expect(kept).toBeGreaterThan(0);
    feed(500);
    // Google's time counts the silence; the final maps back to call audio without it
    s.final("after hold", (s.samples - 400) / 8000);
    expect(finals[0]!.audioEndMs).toBe(950);
  });

  it("on end, half-closes and waits for the last final", async () => {
    const { session, streams, finals, feed } = setup();
    feed(600);
    const done = session.end();
    expect(streams[0]!.ended).toBe(true);
    streams[0]!.final("bye", 0.6);
    streams[0]!.finish();
    await done;
    expect(finals.map((f) => f.text)).toEqual(["bye"]);
    expect(session.committedSample).toBe(4800);
  });
});
