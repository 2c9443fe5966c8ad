/**
 * Bad input from the Twilio side, on real workerd. Each kind is counted under its own name in
 * the call's `bad` counters, the call goes on (or closes with the close code that says why), and
 * a second, well-behaved call on the same edge streams beside it untouched.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { newIdentity, requestTwiml } from "../../tools/src/simulator.js";
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
  it("counts malformed JSON as malformed_json and keeps taking audio", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(10, 1), { speed: Infinity });
    call.sendText('{"event":"media", "media": {');
    await call.play(testAudio(10, 2), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    expect((await endedStats(call)).bad).toEqual({ malformed_json: 1 });
  });

  it("puts 20 ms of silence in place of a payload that is not base64, keeping audio time", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(7, 3), { speed: Infinity });
    call.sendMediaWithPayload("not*base64!", true);
    await call.play(testAudio(7, 4), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    // the engine hears 15 frames of time: the silence sits exactly where the bad frame was
    const session = await expectEngineHeard(runner.engine, call);
    expect(session.blocks.map((b) => b.startSample)).toEqual([0, 800, 1600]);
    const s = await endedStats(call);
    expect(s.bad).toEqual({ payload_not_base64: 1 });
    expect(s.framesConcealed).toBe(1);
    expect(s.audioMs).toBe(300);
  });

  it("uses payloads of 80 and 320 bytes as they are, counting payload_not_160_bytes", async () => {
    const call = await TwilioCall.start(edge);
    const audio = testAudio(7, 5);
    call.sendMedia(audio.subarray(0, 80));
    call.sendMedia(audio.subarray(80, 400));
    await call.play(audio.subarray(400, 1040), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s.bad).toEqual({ payload_not_160_bytes: 2 });
    expect(s.audioMs).toBe(130);
    expect(s.gapFilledMs).toBe(0);
  });

  it("drops media before start, counting media_before_start, and takes the audio after it", async () => {
    const call = await TwilioCall.dial(edge);
    call.sendText(call.script.connected());
    // not sendMedia: this frame must not reach the engine
    call.sendText(call.script.media(testAudio(1, 6)).text);
    call.sendText(call.script.start());
    await call.play(testAudio(10, 7), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s.bad).toEqual({ media_before_start: 1 });
    expect(s.framesIn).toBe(10);
  });

  it("counts an unknown event as unknown_event and goes on", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5, 8), { speed: Infinity });
    call.sendText(JSON.stringify({ event: "wave", sequenceNumber: "99", streamSid: call.identity.streamSid }));
    await call.play(testAudio(5, 9), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    expect((await endedStats(call)).bad).toEqual({ unknown_event: 1 });
  });

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

  it("fills a hole in Twilio's media timestamps with silence and counts the sequence gap", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(5, 13), { speed: Infinity });
    call.loseUpstream(2); // two frames Twilio numbered and stamped but never delivered
    await call.play(testAudio(8, 14), { speed: Infinity });
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    const s = await endedStats(call);
    expect(s).toMatchObject({ gapFilledMs: 40, sequenceGaps: 1, sequenceMissing: 2, audioMs: 300, bad: {} });
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
});

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

  it("closes with 1008 when start carries no ozen_token at all", async () => {
    const call = await TwilioCall.dial(edge, { customParameters: {} });
    call.sendText(call.script.start());
    expect(await call.closed).toBe(1008);
    expect((await endedStats(call)).bad["bad_token"]).toBe(1);
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
