/**
 * Settings that change what the edge does, each on its own edge (workerd boots in well under a
 * second): a receive-only `<Start><Stream>`, other block lengths, an invalid configuration.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeTwilioSignature } from "@ozen/shared";
import { newIdentity, requestTwiml } from "../../tools/src/simulator.js";
import {
  AUTH_TOKEN,
  PUBLIC_BASE_URL,
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

let runner: TestRunner;
/** STREAM_MODE=start, BLOCK_MS=250, no ingest acks (a unidirectional stream takes no messages). */
let receiveOnly: TestEdge;
/** BLOCK_MS=20: one block per Twilio frame. */
let smallBlocks: TestEdge;

beforeAll(async () => {
  runner = await startRunner();
  const RUNNER_URL = `ws://127.0.0.1:${runner.port}/relay`;
  // one after the other: both bundle the Worker to the same file
  receiveOnly = await startTestEdge({ RUNNER_URL, STREAM_MODE: "start", BLOCK_MS: "250", INGEST_ACK: "off" });
  smallBlocks = await startTestEdge({ RUNNER_URL, BLOCK_MS: "20" });
});

afterAll(async () => {
  await receiveOnly?.close();
  await smallBlocks?.close();
  await runner?.close();
});

describe("STREAM_MODE=start", () => {
  it("answers the webhook with <Start><Stream> followed by <Pause> so the call lives on", async () => {
    const { callSid } = newIdentity();
    const params = { CallSid: callSid, AccountSid: "AC" + "0".repeat(32) };
    const res = await fetch(`${receiveOnly.url}/twilio/voice`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": await computeTwilioSignature(AUTH_TOKEN, `${PUBLIC_BASE_URL}/twilio/voice`, params),
      },
      body: new URLSearchParams(params),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(
      new RegExp(
        `<Response><Start><Stream url="ws://127\\.0\\.0\\.1:1/twilio/stream/${callSid}">` +
          `<Parameter name="ozen_token" value="[^"]+"/></Stream></Start><Pause length="\\d+"/></Response>$`,
      ),
    );
  });

  it("sends Twilio nothing on a receive-only stream (no greeting, no marks) and refuses clear (409)", async () => {
    const call = await TwilioCall.start(receiveOnly);
    await call.play(testAudio(25), { speed: Infinity });
    const res = await fetch(`${receiveOnly.url}/calls/${call.callSid}/clear`, { method: "POST", headers: bearer });
    expect(res.status).toBe(409);
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(runner.engine, call);
    expect(call.received).toEqual([]);
    const s = await receiveOnly.callStats(call.callSid);
    expect(s).toMatchObject({ greetingMs: null, greetingFrames: 0, marksSent: 0, clears: 0 });
  });

  it("cuts 250 ms blocks with BLOCK_MS=250", async () => {
    const call = await TwilioCall.start(receiveOnly);
    await call.play(testAudio(30), { speed: Infinity }); // 600 ms: two whole blocks and 100 ms
    expect(await call.hangUp()).toBe(1000);
    const session = await expectEngineHeard(runner.engine, call);
    expect(session.start.blockMs).toBe(250);
    expect(session.blocks.map((b) => [b.startSample, b.pcm.length])).toEqual([
      [0, 2000],
      [2000, 2000],
      [4000, 800],
    ]);
  });
});

describe("BLOCK_MS=20", () => {
  it("relays one 160-sample block per frame, acknowledging each", async () => {
    const call = await TwilioCall.start(smallBlocks, { echoMarks: false });
    await call.play(testAudio(12), { speed: Infinity });
    await waitFor(
      "12 ozen-ack marks",
      () => call.events("mark").filter((m) => m.mark?.name !== "greeting").length >= 12,
    );
    expect(await call.hangUp()).toBe(1000);
    const session = await expectEngineHeard(runner.engine, call);
    expect(session.blocks.map((b) => b.pcm.length)).toEqual(Array<number>(12).fill(SAMPLES_PER_FRAME));
    expect((await smallBlocks.callStats(call.callSid)).blocksMade).toBe(12);
  });
});

describe("an invalid configuration", () => {
  it("answers 500 naming the bad setting, and takes no call", async () => {
    const broken = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`, BLOCK_MS: "10" });
    try {
      const health = await fetch(`${broken.url}/healthz`);
      expect(health.status).toBe(500);
      expect(await health.text()).toBe(
        'edge configuration is invalid: BLOCK_MS is "10", expected a whole number from 20 to 250',
      );
      await expect(
        requestTwiml({
          edgeUrl: broken.url,
          publicUrl: PUBLIC_BASE_URL,
          authToken: AUTH_TOKEN,
          identity: newIdentity(),
        }),
      ).rejects.toThrow(/webhook answered 500/);
    } finally {
      await broken.close();
    }
  });
});
