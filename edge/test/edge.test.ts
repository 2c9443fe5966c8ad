/**
 * The edge on real workerd (Miniflare), real WebSockets over loopback, a real runner process
 * object: Twilio in, blocks out, the greeting, and the bad input a socket shows (the ingest
 * rules themselves are tested as plain values in shared/test/ingest.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseStreamTwiml } from "@ozen/shared";
import { TwilioStreamScript, newIdentity, openStream, placeCall, requestTwiml } from "../../tools/src/simulator.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import {
  API,
  AUTH,
  PUBLIC,
  RecordingEngine,
  callStats,
  decodeMulaw,
  startEdge,
  startRunner,
  testAudio,
  waitFor,
} from "./harness.js";

let edge: LocalEdge;
let engine: RecordingEngine;
let runner: Awaited<ReturnType<typeof startRunner>>;

beforeAll(async () => {
  engine = new RecordingEngine();
  runner = await startRunner(engine);
  edge = await startEdge(runner.port);
});

afterAll(async () => {
  await edge?.close();
  await runner?.server.close();
});

/** A call opened by hand (webhook + signed upgrade + connected + start), for bad-input tests. */
async function openCall() {
  const identity = newIdentity();
  const twiml = await requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, identity });
  const ws = await openStream({ edgeUrl: edge.url, authToken: AUTH, streamUrl: twiml.streamUrl });
  const script = new TwilioStreamScript(identity, twiml.parameters);
  const received: any[] = [];
  ws.on("message", (d) => received.push(JSON.parse(d.toString())));
  const closed = new Promise<{ code: number }>((resolve) => ws.once("close", (code) => resolve({ code })));
  return { identity, ws, script, received, closed };
}

function frames(audio: Uint8Array): Uint8Array[] {
  return Array.from({ length: audio.length / 160 }, (_, i) => audio.subarray(i * 160, (i + 1) * 160));
}

/** A well-behaved call running beside a bad one: it must get all its audio through. */
async function bystander() {
  const audio = testAudio(1);
  const result = placeCall({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, audio, speed: 4 });
  return {
    async check() {
      const r = await result;
      await waitFor(() => engine.calls.get(r.callSid)?.ended === true, 10_000, "bystander call end");
      expect(engine.audio(r.callSid)).toEqual(decodeMulaw(audio));
    },
  };
}

describe("ingest", () => {
  it("delivers every frame's audio to the engine in order, bit-exact, in 100 ms blocks", async () => {
    const audio = testAudio(2);
    const r = await placeCall({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, audio, speed: 4 });
    await waitFor(() => engine.calls.get(r.callSid)?.ended === true, 10_000, "call end at the runner");
    const call = engine.calls.get(r.callSid)!;
    expect(call.blocks.map((b) => b.pcm.length)).toEqual(new Array(20).fill(800));
    expect(call.blocks.map((b) => b.startSample)).toEqual(Array.from({ length: 20 }, (_, i) => i * 800));
    expect(engine.audio(r.callSid)).toEqual(decodeMulaw(audio));
    expect(call.start).toMatchObject({
      callSid: r.callSid,
      sampleRateHz: 8000,
      encoding: "pcm16le",
      blockMs: 100,
      resumeFromSeq: 0,
    });
    expect(call.start.customParameters).not.toHaveProperty("ozen_token");
  });

  it("plays the greeting at once on start and tracks its mark echo", async () => {
    const r = await placeCall({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, audio: testAudio(1), speed: 4 });
    expect(r.greetingBytes).toBe(4800);
    expect(r.greetingMs).not.toBeNull();
    await waitFor(async () => (await callStats(edge, r.callSid)).state === "ended");
    const s = await callStats(edge, r.callSid);
    expect(s).toMatchObject({
      greetingFrames: 1,
      marksSent: 1,
      marksEchoed: 1,
      framesIn: 50,
      blocksMade: 10,
    });
    expect(typeof s.greetingMs).toBe("number");
    expect(s.relayRttMs.count).toBeGreaterThan(0);
  });

  it("sends Twilio clear on barge-in through the API", async () => {
    const c = await openCall();
    c.ws.send(c.script.connected());
    c.ws.send(c.script.start());
    await waitFor(async () => (await callStats(edge, c.identity.callSid)).state === "streaming");
    const res = await fetch(`${edge.url}/calls/${c.identity.callSid}/clear`, {
      method: "POST",
      headers: { Authorization: `Bearer ${API}` },
    });
    expect(res.status).toBe(200);
    await waitFor(() => c.received.some((m) => m.event === "clear"), 5000, "clear");
    expect(c.received.find((m) => m.event === "clear")).toEqual({ event: "clear", streamSid: c.identity.streamSid });
    c.ws.close();
  });

  it("refuses the call API without the bearer token", async () => {
    expect((await fetch(`${edge.url}/calls/${newIdentity().callSid}/stats`)).status).toBe(401);
    expect(
      (await fetch(`${edge.url}/calls/${newIdentity().callSid}/stats`, { headers: { Authorization: "Bearer nope" } }))
        .status,
    ).toBe(401);
  });

  it("serves the naive handler only when BENCH_NAIVE is on", async () => {
    const streamUrl = `${PUBLIC.replace("http", "ws")}/twilio/stream-naive/${newIdentity().callSid}`;
    await expect(openStream({ edgeUrl: edge.url, authToken: AUTH, streamUrl })).rejects.toThrow(/404/);
  });
});

describe("webhook", () => {
  it("answers TwiML that streams the call by path with a call token", async () => {
    const identity = newIdentity();
    const twiml = await requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, identity });
    expect(twiml).toMatchObject({ mode: "connect", streamUrl: `ws://127.0.0.1:1/twilio/stream/${identity.callSid}` });
    expect(twiml.parameters["ozen_token"]).toMatch(/^v1\.\d+\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
  });

  it("refuses a bad or missing signature with 403 and counts it", async () => {
    const before = await (await fetch(`${edge.url}/stats`, { headers: { Authorization: `Bearer ${API}` } })).json();
    for (const signature of ["bad", "none"] as const) {
      await expect(
        requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, identity: newIdentity(), signature }),
      ).rejects.toThrow(/403/);
    }
    await waitFor(async () => {
      const after = await (await fetch(`${edge.url}/stats`, { headers: { Authorization: `Bearer ${API}` } })).json();
      return (after.webhook_bad_signature ?? 0) - (before.webhook_bad_signature ?? 0) === 2;
    });
  });

  it("rejects an upgrade with a bad or missing signature before any socket, and counts it", async () => {
    const identity = newIdentity();
    const twiml = await requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, identity });
    for (const signature of ["bad", "none"] as const) {
      await expect(
        openStream({ edgeUrl: edge.url, authToken: AUTH, streamUrl: twiml.streamUrl, signature }),
      ).rejects.toThrow(/403/);
    }
    await waitFor(async () => {
      const s = await (await fetch(`${edge.url}/stats`, { headers: { Authorization: `Bearer ${API}` } })).json();
      return (s.stream_bad_signature ?? 0) >= 2;
    });
    expect(engine.calls.has(identity.callSid)).toBe(false);
  });
});

describe("bad input", () => {
  it("counts malformed JSON, unknown events and binary frames, and the call goes on", async () => {
    const other = await bystander();
    const c = await openCall();
    c.ws.send(c.script.connected());
    c.ws.send(c.script.start());
    c.ws.send("{not json");
    c.ws.send(JSON.stringify({ event: "wave", sequenceNumber: "9" }));
    c.ws.send(Buffer.from([1, 2, 3]));
    const audio = testAudio(0.5);
    for (const f of frames(audio)) c.ws.send(c.script.media(f).text);
    c.ws.send(c.script.stop());
    await waitFor(() => engine.calls.get(c.identity.callSid)?.ended === true, 10_000, "call end");
    expect(engine.audio(c.identity.callSid)).toEqual(decodeMulaw(audio));
    const s = await callStats(edge, c.identity.callSid);
    expect(s.bad).toMatchObject({ malformed_json: 1, unknown_event: 1, binary_frame: 1 });
    await other.check();
  });

  it("closes with 1009 on a message over 64 KiB", async () => {
    const c = await openCall();
    c.ws.send(c.script.start());
    c.ws.send(JSON.stringify({ event: "media", padding: "x".repeat(70 * 1024) }));
    expect((await c.closed).code).toBe(1009);
    await waitFor(async () => (await callStats(edge, c.identity.callSid)).state === "ended");
    expect((await callStats(edge, c.identity.callSid)).bad.too_large).toBe(1);
  });

  it("ends a call whose client vanishes without stop, flushing all it sent", async () => {
    const c = await openCall();
    c.ws.send(c.script.start());
    const audio = testAudio(0.33);
    for (const f of frames(audio.subarray(0, 2560))) c.ws.send(c.script.media(f).text);
    await waitFor(async () => (await callStats(edge, c.identity.callSid)).framesIn === 16);
    c.ws.terminate();
    await waitFor(() => engine.calls.get(c.identity.callSid)?.ended === true, 10_000, "call end");
    expect(engine.audio(c.identity.callSid)).toEqual(decodeMulaw(audio.subarray(0, 2560)));
    expect((await callStats(edge, c.identity.callSid)).endReason).toMatch(/without stop/);
  });

  it("closes with 1008 when start carries no valid call token", async () => {
    const c = await openCall();
    const script = new TwilioStreamScript(c.identity, { ozen_token: "forged" });
    c.ws.send(script.start());
    expect((await c.closed).code).toBe(1008);
    expect((await callStats(edge, c.identity.callSid)).bad.bad_token).toBe(1);
    expect(engine.calls.has(c.identity.callSid)).toBe(false);
  });
});

describe("runner outages", () => {
  it("keeps audio while the runner is unreachable at call start and delivers all of it later", async () => {
    const late = new RecordingEngine();
    const port = runner.port + 1;
    const local = await startEdge(port, {});
    try {
      const audio = testAudio(2);
      const call = placeCall({ edgeUrl: local.url, publicUrl: PUBLIC, authToken: AUTH, audio, speed: 2 });
      await new Promise((r) => setTimeout(r, 500));
      const r2 = await startRunner(late, port);
      const r = await call;
      await waitFor(() => late.calls.get(r.callSid)?.ended === true, 15_000, "call end at the late runner");
      expect(late.audio(r.callSid)).toEqual(decodeMulaw(audio));
      const s = await (
        await fetch(`${local.url}/calls/${r.callSid}/stats`, { headers: { Authorization: `Bearer ${API}` } })
      ).json();
      expect(s.relay.connectFailures).toBeGreaterThan(0);
      expect(s.relay.lostAtEnd).toBe(0);
      await r2.server.close();
    } finally {
      await local.close();
    }
  });

  it("replays unacknowledged audio to a restarted runner mid-call: nothing lost, nothing twice", async () => {
    const first = new RecordingEngine();
    const port = runner.port + 2;
    let r1 = await startRunner(first, port);
    const local = await startEdge(port, {});
    try {
      const audio = testAudio(3);
      const call = placeCall({ edgeUrl: local.url, publicUrl: PUBLIC, authToken: AUTH, audio, speed: 2 });
      await waitFor(
        () => [...first.calls.values()].some((c) => c.blocks.length >= 5),
        10_000,
        "audio at the first runner",
      );
      await r1.server.close();
      const second = new RecordingEngine();
      r1 = await startRunner(second, port);
      const r = await call;
      await waitFor(() => second.calls.get(r.callSid)?.ended === true, 15_000, "call end at the second runner");
      const a = first.calls.get(r.callSid)!.blocks;
      const b = second.calls.get(r.callSid)!.blocks;
      // the second runner starts where the first's acknowledged audio ended, or earlier (replay)
      expect(b[0]!.startSample).toBeLessThanOrEqual(a[a.length - 1]!.startSample + 800);
      const all = new Int16Array(audio.length);
      for (const blk of [...a, ...b]) all.set(blk.pcm, blk.startSample);
      expect(all).toEqual(decodeMulaw(audio));
      expect(second.audio(r.callSid).length + b[0]!.startSample).toBe(audio.length);
      await r1.server.close();
    } finally {
      await local.close();
    }
  });
});

describe("TwiML parse helper", () => {
  it("reads a Stream element without parameters", () => {
    expect(parseStreamTwiml('<Response><Connect><Stream url="wss://x/y"/></Connect></Response>')?.streamUrl).toBe(
      "wss://x/y",
    );
  });
});
