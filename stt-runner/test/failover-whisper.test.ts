/**
 * Failover, circuit breaker and final pass, end to end below the socket: Google is the official
 * `@google-cloud/speech` client against the loopback gRPC server speaking Google's protocol (with
 * scripted finals, failures and silence); whisper is the real worker process (tiny.en); the
 * events are what the TranscriptForwarder sends an agent.
 */
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TranscriptEvent } from "@ozen/shared";
import { FailoverEngine, blockDbfs, loadFailoverConfig } from "../src/engines/failover.js";
import type { Engine } from "../src/engines/engine.js";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { GoogleEngine } from "../src/engines/google/engine.js";
import { WhisperEngine } from "../src/engines/whisper/engine.js";
import { FinalPassEngine } from "../src/engines/whisper/final-pass.js";
import { ArrivalClock, TranscriptForwarder } from "../src/transcripts.js";
import { startSpeechServer } from "../src/testing/google-grpc.js";
import type { SpeechServer } from "../src/testing/google-grpc.js";
import {
  callOf,
  callStart,
  loadCallAudio,
  play,
  sleep,
  testWhisperConfig,
  expectGoogleThenWhisper,
  whisperSkipReason,
  words,
} from "./whisper-helpers.js";

const skip = whisperSkipReason();
if (skip) console.warn(`failover tests skipped: ${skip}`);

let speech: SpeechServer;
let whisper: WhisperEngine;
const googles: GoogleEngine[] = [];

function google(env: Record<string, string> = {}): GoogleEngine {
  const g = new GoogleEngine(
    loadGoogleConfig({
      GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`,
      GOOGLE_INSECURE: "true",
      GOOGLE_LANGUAGE: "en-US",
      GOOGLE_RETRY_BUDGET: "0",
      ...env,
    }),
  );
  googles.push(g);
  return g;
}

function failover(env: Record<string, string> = {}, now?: () => number): FailoverEngine {
  return new FailoverEngine(google(), whisper, loadFailoverConfig(env), now);
}

/** Requests (100 ms blocks) that cover `pcm`. */
const blocksOf = (pcm: Int16Array) => Math.ceil(pcm.length / 800);

interface CallResult {
  events: TranscriptEvent[];
  finals: Extract<TranscriptEvent, { type: "final" }>[];
  switches: Extract<TranscriptEvent, { type: "engine.switched" }>[];
  /** Call audio fed when the engine switched, ms. */
  fedMsAtSwitch: number | undefined;
}

/** One call through `engine` and the transcript forwarder, as the relay server drives it. */
async function runCall(engine: Engine, callSid: string, pcm: Int16Array, speed: number): Promise<CallResult> {
  const start = callStart(callSid);
  const events: TranscriptEvent[] = [];
  const forwarder = new TranscriptForwarder({
    start,
    engine: engine.nameFor?.(start) ?? engine.name,
    send: (text) => events.push((JSON.parse(text) as { event: TranscriptEvent }).event),
    clock: new ArrivalClock(),
    policy: { language: "en" },
  });
  let fedMs = 0;
  let fedMsAtSwitch: number | undefined;
  const session = engine.open(start, {
    interim: (r) => forwarder.interim(r),
    final: (r) => forwarder.final(r),
    failed: (f) => forwarder.failed(f),
    switched: (s) => {
      fedMsAtSwitch = fedMs;
      forwarder.switched(s);
    },
  });
  const tracked = {
    feed: (p: Int16Array, s: number) => {
      fedMs = ((s + p.length) * 1000) / 8000;
      session.feed(p, s);
    },
    end: () => session.end(),
  };
  await play(tracked, pcm, { speed });
  await session.end();
  forwarder.close();
  return {
    events,
    finals: events.filter((e): e is CallResult["finals"][number] => e.type === "final"),
    switches: events.filter((e): e is CallResult["switches"][number] => e.type === "engine.switched"),
    fedMsAtSwitch,
  };
}

const textOf = (finals: readonly { text: string }[]) => words(finals.map((f) => f.text).join(" "));

describe.skipIf(skip !== undefined)("failover from Google to the whisper worker", () => {
  beforeAll(async () => {
    speech = await startSpeechServer();
    ({ engine: whisper } = await WhisperEngine.start(testWhisperConfig()));
  });
  afterAll(async () => {
    await Promise.all(googles.splice(0).map((g) => g.close()));
    await whisper?.close();
    speech?.close();
  });

  it("moves a call whose Google stream fails past its retry budget, replaying from Google's last final", async () => {
    const first = callOf(loadCallAudio("password"), 1500);
    const second = callOf(loadCallAudio("directory"), 1500);
    // Google finals the first utterance, then its stream fails 2 s into the second one
    speech.behaviour.scriptedFinals = [{ afterRequests: blocksOf(first), text: "google heard the first" }];
    speech.behaviour.failOnceAfterRequests = blocksOf(first) + 20;
    const engine = failover({ OZEN_FAILOVER_NO_RESULT_MS: "0" });
    const r = await runCall(engine, "CAfailed", callOf(first, second), 2);

    expect(r.events[0]).toMatchObject({ type: "call.started", engine: "google-v1" });
    expect(r.switches).toEqual([
      expect.objectContaining({
        from: "google-v1",
        to: "whisper",
        reason: expect.stringMatching(/^grpc_14: /),
        resumeFromMs: (blocksOf(first) * 800 * 1000) / 8000,
      }),
    ]);
    const googleFinals = r.finals.filter((f) => f.engine === "google-v1");
    const whisperFinals = r.finals.filter((f) => f.engine === "whisper");
    expect(googleFinals.map((f) => f.text)).toEqual(["Google heard the first."]);
    // the rest of the call, heard by whisper from Google's last final: nothing lost, nothing twice
    expect(textOf(whisperFinals)).toEqual(expect.arrayContaining(["if", "person", "looking", "press", "now", "star"]));
    expect(textOf(whisperFinals)).not.toContain("password");
    expect(whisperFinals[0]!.audioStartMs).toBeGreaterThanOrEqual(r.switches[0]!.resumeFromMs!);
    // the switch comes between Google's final and whisper's
    const order = r.events.map((e) => (e.type === "final" ? e.engine : e.type));
    expect(order.indexOf("engine.switched")).toBeGreaterThan(order.indexOf("google-v1"));
    expect(order.indexOf("engine.switched")).toBeLessThan(order.indexOf("whisper"));
    expect(engine.counters).toMatchObject({ switchesFailed: 1, switchesNoResult: 0 });
    expect(engine.counters.replayedMs).toBeGreaterThanOrEqual(2000);
  }, 120_000);

  it("moves a call when Google says nothing while speech is present, after the configured time", async () => {
    speech.behaviour.silent = true;
    const pcm = callOf(loadCallAudio("password"), 1200, loadCallAudio("directory"), 1500);
    const engine = failover({ OZEN_FAILOVER_NO_RESULT_MS: "2000" });
    let r: CallResult;
    try {
      r = await runCall(engine, "CAsilent", pcm, 2);
    } finally {
      speech.behaviour.silent = false;
    }
    // the block at which 2000 ms of speech (>= -40 dBFS) had gone by without a result
    let speechMs = 0;
    let expectedMs = 0;
    for (let i = 0; i < pcm.length && speechMs < 2000; i += 800) {
      const block = pcm.subarray(i, i + 800);
      if (blockDbfs(block) >= -40) speechMs += 100;
      expectedMs = ((i + block.length) * 1000) / 8000;
    }
    expect(r.fedMsAtSwitch).toBe(expectedMs);
    expect(r.switches).toEqual([
      expect.objectContaining({
        from: "google-v1",
        to: "whisper",
        reason: "no_result: 2000 ms of speech without a result from google-v1",
        resumeFromMs: 0,
      }),
    ]);
    // whisper heard the whole call (Google had finalised nothing)
    expect(r.finals.every((f) => f.engine === "whisper")).toBe(true);
    expect(textOf(r.finals)).toEqual(expect.arrayContaining(["password", "pound", "person", "looking", "star"]));
    expect(engine.counters.switchesNoResult).toBe(1);
  }, 120_000);

  it("opens the breaker after N failures: new calls go to whisper, and a probe after the cool-down closes it", async () => {
    let nowMs = 0; // the breaker's clock, moved by hand
    const engine = failover({ OZEN_BREAKER_FAILURES: "2", OZEN_BREAKER_COOLDOWN_MS: "30000" }, () => nowMs);
    const short = callOf(loadCallAudio("channel"), 1000);
    for (const sid of ["CAbrk1", "CAbrk2"]) {
      speech.behaviour.failOnceAfterRequests = 5;
      const r = await runCall(engine, sid, short, 4);
      expect(r.switches).toHaveLength(1);
    }
    expect(engine.breaker.state(nowMs)).toBe("open");
    const streamsBefore = speech.seen.length;
    const diverted = await runCall(engine, "CAbrk3", short, 4);
    expect(diverted.events[0]).toMatchObject({ type: "call.started", engine: "whisper" });
    expect(diverted.switches).toEqual([]);
    expect(speech.seen.length).toBe(streamsBefore); // Google never heard of it
    expect(textOf(diverted.finals)).toEqual(expect.arrayContaining(["channel", "number", "pound", "key"]));
    expect(engine.stats()).toMatchObject({ breakerOpen: 1, breakerOpened: 1, callsOnFallback: 1, switchesFailed: 2 });

    nowMs += 29_999;
    expect(engine.breaker.state(nowMs)).toBe("open");
    nowMs += 1;
    expect(engine.breaker.state(nowMs)).toBe("half-open");
    const probe = await runCall(engine, "CAbrk4", short, 4);
    expect(probe.events[0]).toMatchObject({ type: "call.started", engine: "google-v1" });
    expect(probe.switches).toEqual([]);
    expect(engine.breaker.state(nowMs)).toBe("closed");
    expect(engine.stats()).toMatchObject({ breakerOpen: 0, breakerClosed: 1, breakerProbes: 1 });
  }, 180_000);
});

describe.skipIf(skip !== undefined)("failover with a worker that is gone", () => {
  beforeAll(async () => {
    speech = await startSpeechServer();
  });
  afterAll(async () => {
    await Promise.all(googles.splice(0).map((g) => g.close()));
    speech?.close();
  });

  it("keeps new calls on Google and lets a failed call go on without transcripts", async () => {
    // a worker whose model disappears, then dies: it cannot be restarted
    const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-model-"));
    const link = path.join(dir, "model");
    const probe = await WhisperEngine.start(testWhisperConfig());
    symlinkSync(probe.ready.path!, link);
    await probe.engine.close();
    const { engine: doomed } = await WhisperEngine.start(
      testWhisperConfig({ WHISPER_MODEL: link, WHISPER_MAX_RESTARTS: "1" }),
    );
    try {
      rmSync(dir, { recursive: true });
      process.kill(doomed.worker.pid!, "SIGKILL");
      for (let i = 0; i < 300 && doomed.available; i++) await sleep(100);
      expect(doomed.available).toBe(false);
      const engine = new FailoverEngine(google(), doomed, loadFailoverConfig({ OZEN_BREAKER_FAILURES: "1" }));
      speech.behaviour.failOnceAfterRequests = 5;
      const r = await runCall(engine, "CAnowhere", callOf(loadCallAudio("channel"), 500), 4);
      expect(r.switches).toEqual([expect.objectContaining({ from: "google-v1", to: "none" })]);
      expect(engine.counters.switchesFailed).toBe(0);
      // the breaker is open, but whisper cannot take calls: the next call still goes to Google
      expect(engine.breaker.state(Date.now())).toBe("open");
      expect(engine.nameFor(callStart("CAnext"))).toBe("google-v1");
    } finally {
      await doomed.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(skip !== undefined)("final pass: whisper re-decodes each Google final", () => {
  beforeAll(async () => {
    speech = await startSpeechServer();
    speech.behaviour.finalOnHalfClose = false; // Google's finals are the scripted ones
    ({ engine: whisper } = await WhisperEngine.start(testWhisperConfig()));
  });
  afterAll(async () => {
    await Promise.all(googles.splice(0).map((g) => g.close()));
    await whisper?.close();
    speech?.close();
  });

  const first = callOf(loadCallAudio("password"), 1200);
  const second = callOf(loadCallAudio("channel"), 1200);

  it("keeps Google's text and adds whisper's for the same audio", async () => {
    speech.behaviour.scriptedFinals = [
      { afterRequests: blocksOf(first), text: "google one" },
      { afterRequests: blocksOf(first) + blocksOf(second), text: "google two" },
    ];
    const engine = new FinalPassEngine(google(), whisper, { timeoutMs: 10_000, prefer: "primary", bufferMaxS: 60 });
    const r = await runCall(engine, "CAfinalpass", callOf(first, second), 2);
    expect(r.finals.map((f) => [f.engine, f.text])).toEqual([
      ["google-v1", "Google one."],
      ["google-v1", "Google two."],
    ]);
    expect(r.finals.map((f) => f.alternatives?.map((a) => a.engine))).toEqual([["whisper"], ["whisper"]]);
    expect(words(r.finals[0]!.alternatives![0]!.text)).toEqual(
      expect.arrayContaining(["password", "followed", "pound", "key"]),
    );
    expect(words(r.finals[1]!.alternatives![0]!.text)).toEqual(expect.arrayContaining(["channel", "number"]));
    expect(words(r.finals[1]!.alternatives![0]!.text)).not.toContain("password");
    expect(engine.counters).toMatchObject({ requested: 2, confirmed: 2, differed: 2, timedOut: 0 });
  }, 120_000);

  it("does not hold a Google final past its timeout: it goes out alone when whisper is late", async () => {
    speech.behaviour.scriptedFinals = [{ afterRequests: blocksOf(first), text: "google one" }];
    const engine = new FinalPassEngine(google(), whisper, { timeoutMs: 5, prefer: "primary", bufferMaxS: 60 });
    const r = await runCall(engine, "CAlate", first, 2);
    expect(r.finals).toEqual([expect.objectContaining({ engine: "google-v1", text: "Google one." })]);
    expect(r.finals[0]!.alternatives).toBeUndefined();
    expect(engine.counters).toMatchObject({ requested: 1, confirmed: 0, timedOut: 1 });
    expect(engine.counters.heldMsTotal).toBeLessThan(100);
  }, 120_000);

  it("composed over failover: Google's finals get whisper's text, whisper's own finals after a switch are not decoded twice", async () => {
    speech.behaviour.scriptedFinals = [{ afterRequests: blocksOf(first), text: "google one" }];
    speech.behaviour.failOnceAfterRequests = blocksOf(first) + 10;
    const fo = new FailoverEngine(google(), whisper, loadFailoverConfig({ OZEN_FAILOVER_NO_RESULT_MS: "0" }));
    const engine = new FinalPassEngine(fo, whisper, { timeoutMs: 10_000, prefer: "primary", bufferMaxS: 60 });
    const r = await runCall(engine, "CAcomposed", callOf(first, loadCallAudio("directory"), 1500), 2);
    expectGoogleThenWhisper(r.events);
    expect(r.finals[0]!.alternatives?.map((a) => a.engine)).toEqual(["whisper"]);
    expect(words(r.finals[0]!.alternatives![0]!.text)).toEqual(expect.arrayContaining(["password", "pound"]));
    const own = r.finals.slice(1);
    for (const f of own) expect(f.alternatives).toBeUndefined(); // not decoded a second time
    expect(own.flatMap((f) => words(f.text))).toEqual(expect.arrayContaining(["person", "looking", "star"]));
    expect(engine.counters).toMatchObject({ requested: 1, confirmed: 1 });
  }, 120_000);

  it("puts whisper's text first when told to prefer it", async () => {
    speech.behaviour.scriptedFinals = [{ afterRequests: blocksOf(first), text: "google one" }];
    const engine = new FinalPassEngine(google(), whisper, { timeoutMs: 10_000, prefer: "whisper", bufferMaxS: 60 });
    const r = await runCall(engine, "CAprefer", first, 2);
    expect(r.finals).toHaveLength(1);
    expect(r.finals[0]).toMatchObject({
      engine: "whisper",
      alternatives: [{ engine: "google-v1", text: "Google one." }],
    });
    expect(words(r.finals[0]!.text)).toEqual(expect.arrayContaining(["password", "pound", "key"]));
  }, 120_000);
});
