/**
 * The happy path on real workerd: a well-behaved Twilio stream through the CallSession Durable
 * Object to a real runner, and the call API around it.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  API_TOKEN,
  SAMPLES_PER_FRAME,
  TwilioCall,
  bearer,
  expectEngineHeard,
  startRunner,
  startTestEdge,
  testAudio,
  waitFor,
} from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";
import { newIdentity } from "../../tools/src/simulator.js";

const GREETING = readFileSync(new URL("../assets/greeting.ulaw", import.meta.url));
const BLOCK_SAMPLES = 800; // BLOCK_MS=100 at 8 kHz

let runner: TestRunner;
let edge: TestEdge;

beforeAll(async () => {
  runner = await startRunner();
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`, BENCH_NAIVE: "on" });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

describe("audio to the engine", () => {
  it("delivers every frame bit-exactly, in order, in 100 ms blocks with continuous audio time", async () => {
    const call = await TwilioCall.start(edge);
    // 52 frames: ten whole 100 ms blocks and a short last one of 2 frames, flushed at stop
    expect(await call.play(testAudio(52), { speed: 4 })).toBe(52);
    expect(await call.hangUp()).toBe(1000);

    const session = await expectEngineHeard(runner.engine, call);
    expect(session.blocks.map((b) => b.startSample)).toEqual(Array.from({ length: 11 }, (_, i) => i * BLOCK_SAMPLES));
    expect(session.blocks.map((b) => b.pcm.length)).toEqual([...Array<number>(10).fill(BLOCK_SAMPLES), 320]);
    expect(session.ended).toBe(true);
    expect(runner.server.counters.gapBlocks).toBe(0);
    expect(runner.server.counters.duplicateBlocks).toBe(0);
  });

  it("opens the runner session with the call's identity and parameters, minus the ozen_token", async () => {
    const call = await TwilioCall.start(edge, { extraParameters: { FirstName: "Dana" } });
    await call.play(testAudio(5), { speed: Infinity });
    await call.hangUp();

    const { start } = runner.engine.sessionFor(call.callSid);
    expect(start).toMatchObject({
      type: "start",
      callSid: call.callSid,
      streamSid: call.identity.streamSid,
      accountSid: call.identity.accountSid,
      sampleRateHz: 8000,
      encoding: "pcm16le",
      blockMs: 100,
      tracks: ["inbound"],
      customParameters: { FirstName: "Dana" },
      resumeFromSeq: 0,
    });
  });

  it("sends Twilio one ozen-ack mark per block with INGEST_ACK=block", async () => {
    // no mark echoes: they would take sequence numbers too
    const call = await TwilioCall.start(edge, { echoMarks: false });
    await call.play(testAudio(25), { speed: 4 });
    const acks = await waitFor("5 ozen-ack marks", () => {
      const marks = call.events("mark").filter((m) => m.mark?.name.startsWith("ozen-ack:"));
      return marks.length >= 5 && marks;
    });
    // a block is sealed by its 5th frame: the ack names that frame's sequenceNumber (start is 1)
    expect(acks.map((m) => m.mark?.name)).toEqual([6, 11, 16, 21, 26].map((n) => `ozen-ack:${n}`));
    await call.hangUp();
  });
});

describe("greeting and barge-in", () => {
  it("plays the greeting right after start, then a mark whose echo is counted", async () => {
    const call = await TwilioCall.start(edge);
    await waitFor("the greeting and its mark", () => call.received.length >= 2);
    const [media, mark] = call.received;
    expect(media?.event).toBe("media");
    expect(media?.streamSid).toBe(call.identity.streamSid);
    expect(Buffer.from(media?.media?.payload ?? "", "base64").equals(GREETING)).toBe(true);
    expect(mark).toEqual({ event: "mark", streamSid: call.identity.streamSid, mark: { name: "greeting" } });

    // the scripted Twilio echoes the mark as soon as it arrives
    const stats = await waitFor("the greeting mark's echo", async () => {
      const s = await edge.callStats(call.callSid);
      return s.marksEchoed === 1 && s;
    });
    expect(stats.marksSent).toBe(1);
    expect(stats.greetingFrames).toBe(1);
    await call.hangUp();
  });

  it("POST /calls/{sid}/clear sends Twilio a clear for the stream", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5), { speed: Infinity });
    // the object takes the socket's messages in order, but a request may overtake them: until its
    // `start` is taken the call has no stream to clear (409, the next test)
    await waitFor("the stream taken", async () => (await edge.callStats(call.callSid)).state === "streaming");
    const res = await fetch(`${edge.url}/calls/${call.callSid}/clear`, { method: "POST", headers: bearer });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ cleared: true });
    const clear = await waitFor("a clear message", () => call.events("clear")[0]);
    expect(clear).toEqual({ event: "clear", streamSid: call.identity.streamSid });
    await call.hangUp();
    expect((await edge.callStats(call.callSid)).clears).toBe(1);
  });

  it("POST /calls/{sid}/clear answers 409 for a call with no stream", async () => {
    const res = await fetch(`${edge.url}/calls/${newIdentity().callSid}/clear`, { method: "POST", headers: bearer });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ cleared: false });
  });

  it("POST /calls/{sid}/clear answers 409 once the call has ended", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5), { speed: Infinity });
    await call.hangUp();
    const res = await fetch(`${edge.url}/calls/${call.callSid}/clear`, { method: "POST", headers: bearer });
    expect(res.status).toBe(409);
    expect((await edge.callStats(call.callSid)).clears).toBe(0);
  });
});

describe("the stats endpoint", () => {
  it("reports frames in, blocks, relay round trips, handler time and greeting time", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(50), { speed: 4 });
    await call.hangUp();

    const s = await edge.callStats(call.callSid);
    expect(s).toMatchObject({
      callSid: call.callSid,
      streamSid: call.identity.streamSid,
      state: "ended",
      endReason: "twilio stop",
      framesIn: 50,
      framesConcealed: 0,
      audioMs: 1000,
      bad: {},
      sequenceGaps: 0,
      blocksMade: 10,
      decode: "table",
      blockMs: 100,
      relay: { connects: 1, connectFailures: 0, blocksSent: 10, blocksAcked: 10, pendingBlocks: 0, lostAtEnd: 0 },
    });
    // every block's holding time is measured; the intervals between blocks sent once the link was
    // up (how many depends on when it connected, and their size on the machine's load: the pacing
    // figures are `ozen bench ingest`'s, not a unit test's)
    expect(s.blockHeldMs.count).toBe(10);
    expect(s.blockIntervalMs.count).toBeGreaterThanOrEqual(1);
    expect(s.blockIntervalMs.count).toBeLessThanOrEqual(9);
    expect(s.blockIntervalMs.p50).toBeGreaterThanOrEqual(0);
    expect(s.relayRttMs.count).toBeGreaterThan(0);
    expect(s.relayRttMs.p50).toEqual(expect.any(Number));
    expect(s.relayRttMs.p99).toEqual(expect.any(Number));
    const histogramCount = Object.values(s.relayRttMsHistogram).reduce((a, b) => a + b, 0);
    expect(histogramCount).toBe(s.relayRttMs.count);
    expect(s.handlerMsTotal).toEqual(expect.any(Number));
    expect(s.handlerMsMax).toEqual(expect.any(Number));
    expect(s.decodeMsTotal).toBeGreaterThanOrEqual(0);
    expect(s.decodeMsTotal).toBeLessThanOrEqual(s.handlerMsTotal);
    expect(s.greetingMs).toEqual(expect.any(Number));
  });

  it("answers an unknown call with state unknown", async () => {
    const res = await fetch(`${edge.url}/calls/${newIdentity().callSid}/stats`, { headers: bearer });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ state: "unknown" });
  });

  it("refuses the stats without a bearer token or with a wrong one (401), and counts it", async () => {
    const before = (await edge.counters())["api_bad_token"] ?? 0;
    const none = await fetch(`${edge.url}/calls/${newIdentity().callSid}/stats`);
    const wrong = await fetch(`${edge.url}/calls/${newIdentity().callSid}/stats`, {
      headers: { Authorization: `Bearer ${API_TOKEN}x` },
    });
    const global = await fetch(`${edge.url}/stats`, { headers: { Authorization: "Basic whatever" } });
    expect([none.status, wrong.status, global.status]).toEqual([401, 401, 401]);
    await waitFor("api_bad_token to count 3 more", async () => (await edge.counters())["api_bad_token"] === before + 3);
  });
});

describe("the naive benchmark route (BENCH_NAIVE=on)", () => {
  it("relays each 20 ms frame on its own", async () => {
    const call = await TwilioCall.start(edge, { naive: true });
    await call.play(testAudio(10), { speed: 4 });
    const session = await expectEngineHeard(runner.engine, call);
    expect(session.blocks.map((b) => b.pcm.length)).toEqual(Array<number>(10).fill(SAMPLES_PER_FRAME));
    await call.hangUp();
    const s = await edge.callStats(call.callSid, { naive: true });
    expect(s.framesIn).toBe(10);
    expect(s.blocksMade).toBe(10);
  });
});
