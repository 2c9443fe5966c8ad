/**
 * The edge's side of relay authentication and its honest counters, on real workerd with a real
 * runner: each (re)connect signs a fresh credential for its call; an edge whose RELAY_SECRET is
 * not the runner's is refused in the upgrade (no engine session), and says why; the stats tell
 * blocks lost unsent apart from blocks the runner has but has not committed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import type { EngineSession } from "@ozen/stt-runner";
import {
  RecordingEngine,
  TwilioCall,
  expectEngineHeard,
  startProxy,
  startRunner,
  startTestEdge,
  testAudio,
  waitFor,
} from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";

/** Keeps every block it hears uncommitted (a long utterance with no final yet). */
class NeverCommits extends RecordingEngine {
  override open(start: RelayStart): EngineSession {
    return { ...super.open(start), committedSample: 0 };
  }
}

let runner: TestRunner;

beforeAll(async () => {
  runner = await startRunner();
});

afterAll(async () => {
  await runner?.close();
});

describe("relay credentials from the edge", () => {
  let wrongSecret: TestEdge;
  let noSecret: TestEdge;

  beforeAll(async () => {
    const RUNNER_URL = `ws://127.0.0.1:${runner.port}/relay`;
    wrongSecret = await startTestEdge({ RUNNER_URL, RELAY_SECRET: "not-the-runners-secret-0123" });
    noSecret = await startTestEdge({ RUNNER_URL, RELAY_SECRET: "" });
  });

  afterAll(async () => {
    await wrongSecret?.close();
    await noSecret?.close();
  });

  it("an edge with another RELAY_SECRET is refused in the upgrade: no engine session, and it says why", async () => {
    const call = await TwilioCall.start(wrongSecret);
    await call.play(testAudio(20, 5), { speed: 2 });
    await waitFor(
      "a few refused dials",
      async () => (await wrongSecret.callStats(call.callSid)).relay.connectFailures >= 3,
    );
    const s = await wrongSecret.callStats(call.callSid);
    expect(s.relay).toMatchObject({ connects: 0, blocksSent: 0 });
    expect(runner.engine.sessionsFor(call.callSid)).toEqual([]);
    expect(runner.server.relayAuthRefused.bad_signature).toBeGreaterThanOrEqual(3);
    expect(wrongSecret.logs.some((l) => l.includes("runner refused the relay credential (HTTP 401"))).toBe(true);
    call.terminate();
  });

  it("an edge with no RELAY_SECRET sends no credential and is refused the same way", async () => {
    const call = await TwilioCall.start(noSecret);
    await call.play(testAudio(10, 5), { speed: 2 });
    await waitFor("a refused dial", () => runner.server.relayAuthRefused.missing >= 1);
    expect(runner.engine.sessionsFor(call.callSid)).toEqual([]);
    await waitFor("the edge saying why", () => noSecret.logs.some((l) => l.includes("RELAY_SECRET is not set")));
    call.terminate();
  });

  it("a link cut mid-call reconnects with a fresh credential: the same session hears every block once", async () => {
    const own = await startRunner();
    const proxy = await startProxy(own.port);
    const edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${proxy.port}/relay` });
    try {
      const call = await TwilioCall.start(edge);
      await call.play(testAudio(25, 6), { speed: 2 });
      proxy.cut();
      await call.play(testAudio(25, 7), { speed: 2 });
      await call.hangUp();
      await expectEngineHeard(own.engine, call);
      expect((await edge.callStats(call.callSid)).relay.connects).toBe(2);
      expect(Object.values(own.server.relayAuthRefused).every((n) => n === 0)).toBe(true);
    } finally {
      await edge.close();
      await proxy.close();
      await own.close();
    }
  });
});

describe("the relay's counters", () => {
  let keeper: TestRunner;
  let edge: TestEdge;

  beforeAll(async () => {
    keeper = await startRunner(new NeverCommits());
    // 1 s of buffer: 10 blocks of 100 ms
    edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${keeper.port}/relay`, RELAY_BUFFER_MS: "1000" });
  });

  afterAll(async () => {
    await edge?.close();
    await keeper?.close();
  });

  it("blocks the runner has but has not committed are unacknowledged, not dropped, when they leave the buffer", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(150, 8), { speed: 3 }); // 3 s: 30 blocks
    const s = await waitFor("30 blocks sent", async () => {
      const st = await edge.callStats(call.callSid);
      return st.relay.blocksSent >= 30 ? st : undefined;
    });
    expect(s.relay).toMatchObject({ blocksDropped: 0, pendingBlocks: 10, unacknowledged: 10 });
    expect(s.relay.blocksEvicted).toBeGreaterThanOrEqual(20);
    call.terminate();
  });
});
