/**
 * Bad input from the Twilio side that only a socket shows, on real workerd: a binary frame, a
 * message too big, a client that vanishes, a forged call token, a bad signature. Each is counted
 * under its own name in the call's `bad` counters, the call goes on (or closes with the close code
 * that says why), and a second, well-behaved call on the same edge streams beside it untouched.
 * The ingest rules themselves (malformed messages, bad payloads, timestamp holes, media before
 * start, a client faster than real time) are tested as plain values in shared/test/ingest.test.ts;
 * a burst at 20x real time stays here: it shows the handler keeps up with no queue in front.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { performance } from "node:perf_hooks";
import { GAP_FILL_SLACK_MS } from "@ozen/shared";
import { TwilioStreamScript, newIdentity, requestTwiml } from "../../tools/src/simulator.js";
import {
  AUTH_TOKEN,
  Bystander,
  PUBLIC_BASE_URL,
  SAMPLES_PER_FRAME,
  TwilioCall,
  expectEngineHeard,
  startRunner,
  startTestEdge,
  testAudio,
  upgradeStatus,
  waitFor,
} from "./helpers.js";
import type { CallStatsView, TestEdge, TestRunner } from "./helpers.js";

let runner: TestRunner;
let edge: TestEdge;
let bystander: Bystander;

beforeAll(async () => {
  runner = await startRunner();
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay` });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

// every test runs beside a well-behaved call and ends by checking it lost nothing
beforeEach(async () => {
  bystander = await Bystander.start(edge);
});

afterEach(async () => {
  await bystander.finish(runner.engine);
  const s = await edge.callStats(bystander.call.callSid);
  expect(s.bad, "the bystander's bad-input counters").toEqual({});
});

/** Stats once the call is over (the edge closes the socket after the runner has everything). */
async function endedStats(call: TwilioCall): Promise<CallStatsView> {
  return waitFor(`${call.callSid} to end`, async () => {
    const s = await edge.callStats(call.callSid);
    return s.state === "ended" && s;
  });
}

describe("a call that goes on", () => {
  it("ignores a binary frame, counting binary_frame", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5, 10), { speed: Infinity });
    // raw mu-law as a binary WebSocket frame: not a Twilio message, must not become audio
    call.sendBinary(testAudio(1, 11));
    await call.play(testAudio(5, 12), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    expect((await endedStats(call)).bad).toEqual({ binary_frame: 1 });
  });

  it("takes every frame from a client sending 20x faster than real time", async () => {
    const call = await TwilioCall.start(edge);
    // 5 s of audio in about a quarter of a second
    expect(await call.play(testAudio(250, 15), { speed: 20 })).toBe(250);
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s.framesIn).toBe(250);
    expect(s.aheadOfRealtimeMsMax).toBeGreaterThan(1000);
    expect(s.bad).toEqual({});
  });
  it("drops frames of another streamSid, counting other_stream_sid: the engine hears only the call's", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5, 23), { speed: Infinity });
    // a second stream's frames on this call's socket, numbered and stamped on their own
    const intruder = new TwilioStreamScript({ ...call.identity, streamSid: newIdentity().streamSid }, {});
    for (let i = 0; i < 5; i++) call.sendText(intruder.media(testAudio(1, 24 + i)).text);
    await call.play(testAudio(5, 30), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    expect((await endedStats(call)).bad).toEqual({ other_stream_sid: 5 });
  });

  it("fills timestamp holes with no more silence than the time that passed, counting gapFillRefusedMs", async () => {
    const call = await TwilioCall.start(edge);
    const t0 = performance.now();
    call.sendMedia(testAudio(1, 31));
    // 100 frames as fast as the socket takes them, each stamped 4 s after the one before
    for (let i = 0; i < 100; i++) {
      call.loseUpstream(200);
      call.sendMedia(testAudio(1, 32 + i));
    }
    await waitFor("the edge to take the 101 frames", async () => (await edge.callStats(call.callSid)).framesIn === 101);
    const wallMs = performance.now() - t0;
    expect(await call.hangUp()).toBe(1000);
    const s = await endedStats(call);
    expect(s.gapFilledMs + s.gapFillRefusedMs).toBe(100 * 4000);
    expect(s.gapFilledMs).toBeLessThanOrEqual(wallMs + GAP_FILL_SLACK_MS);
    expect(s.audioMs).toBeLessThanOrEqual(wallMs + GAP_FILL_SLACK_MS + 101 * 20);
    expect(s.bad).toEqual({});
    console.log(JSON.stringify({ figure: "gap_fill_bounded", wallMs: Math.round(wallMs), ...pick(s) }));
  });
});

function pick(s: CallStatsView) {
  return { gapFilledMs: s.gapFilledMs, gapFillRefusedMs: s.gapFillRefusedMs, audioMs: s.audioMs };
}

describe("a call that ends", () => {
  it("closes with 1009 on a message over 64 KiB, counting too_large, after relaying what came before", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(12, 16), { speed: Infinity });
    call.sendText(JSON.stringify({ event: "media", padding: "x".repeat(65 * 1024) }));
    expect(await call.closed).toBe(1009);
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s.bad).toEqual({ too_large: 1 });
    expect(s.endReason).toBe("message too big");
  });

  it("ends a call whose client vanishes without stop, and the runner still gets all it sent", async () => {
    const call = await TwilioCall.start(edge);
    // 13 frames: two whole blocks and a partial one the edge must flush at the end
    await call.play(testAudio(13, 17), { speed: Infinity });
    await waitFor("the edge to take all 13 frames", async () => (await edge.callStats(call.callSid)).framesIn === 13);
    call.terminate();
    const session = await expectEngineHeard(runner.engine, call);
    expect(session.blocks.map((b) => b.pcm.length)).toEqual([800, 800, 3 * SAMPLES_PER_FRAME]);
    await waitFor("the runner session to end", () => session.ended);
    const s = await endedStats(call);
    expect(s.endReason).toMatch(/without stop/);
    expect(s.relay.lostAtEnd).toBe(0);
  });

  it("ends a call whose client closes the socket without stop, relaying all it sent", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(7, 20), { speed: Infinity });
    call.ws.close(1000, "bye");
    await call.closed;
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s.endReason).toBe("twilio closed the socket (1000) without stop");
    expect(s.framesIn).toBe(7);
  });

  it("closes with 1008 when start carries a wrong ozen_token, counting bad_token, and relays nothing", async () => {
    const call = await TwilioCall.dial(edge, { customParameters: { ozen_token: "forged" } });
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    call.sendText(call.script.media(testAudio(1, 18)).text);
    expect(await call.closed).toBe(1008);
    const s = await endedStats(call);
    expect(s.bad["bad_token"]).toBe(1);
    expect(s.relay.connects).toBe(0);
    expect(runner.engine.sessionsFor(call.callSid)).toEqual([]);
  });
});

describe("a stream that never opens", () => {
  it("refuses an upgrade with a bad or no signature with HTTP 403, counting stream_bad_signature", async () => {
    const before = (await edge.counters())["stream_bad_signature"] ?? 0;
    const identity = newIdentity();
    // a real call's stream URL: only the signature is wrong
    const twiml = await requestTwiml({
      edgeUrl: edge.url,
      publicUrl: PUBLIC_BASE_URL,
      authToken: AUTH_TOKEN,
      identity,
    });
    const path = new URL(twiml.streamUrl).pathname;
    expect(await upgradeStatus(edge, path, "bad")).toBe(403);
    expect(await upgradeStatus(edge, path, "none")).toBe(403);
    await waitFor(
      "stream_bad_signature + 2",
      async () => (await edge.counters())["stream_bad_signature"] === before + 2,
    );
    // no Durable Object took the stream: the call has no record
    expect((await edge.callStats(identity.callSid)).state).toBe("unknown");
  });

  it("refuses a second stream for a call that already has one (409)", async () => {
    const call = await TwilioCall.start(edge);
    const path = `/twilio/stream/${call.callSid}`;
    expect(await upgradeStatus(edge, path, "valid")).toBe(409);
    await call.play(testAudio(5, 19), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
  });
});
