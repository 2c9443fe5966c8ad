/**
 * The agent's voice on real workerd (`docs/agent-control.md`): an agent controls a call on its
 * event socket (JSON and binary chunks), plays a file by HTTP, clears, marks; barge-in on speech
 * onset; DTMF events; and the bad input (each beside a bystander call that must not notice).
 * The runner is real, with the speech activity detector in front of a recording engine.
 */
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { decodeMulaw, encodeMulaw, wavBytes } from "@ozen/shared";
import { RelayServer, TranscriptForwarder, withSpeechActivity } from "@ozen/stt-runner";
import {
  API_TOKEN,
  AUTH_TOKEN,
  Bystander,
  PUBLIC_BASE_URL,
  RELAY_SECRET,
  RecordingEngine,
  TwilioCall,
  bearer,
  sleep,
  startTestEdge,
  waitFor,
} from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { WordEngine, refusedUpgrade, startTranscribingRunner } from "./transcripts.js";
import { newIdentity, placeCall } from "../../tools/src/simulator.js";

const READ_ONLY = "read-only-token";

let server: RelayServer;
let runnerPort = 0;
let edge: TestEdge;
const engine = new RecordingEngine();

beforeAll(async () => {
  server = new RelayServer({
    engine: withSpeechActivity(engine),
    port: 0,
    relaySecret: RELAY_SECRET,
    log: () => {},
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: "recording", send, clock }),
  });
  const port = await server.listen();
  runnerPort = port;
  edge = await startTestEdge({
    RUNNER_URL: `ws://127.0.0.1:${port}/relay`,
    GREETING: "agent",
    BARGE_IN: "speech",
    EVENTS_TOKEN: READ_ONLY,
    PLAYBACK_QUEUE_MS: "3000",
  });
});

afterAll(async () => {
  await edge?.close();
  await server?.close();
});

/** An agent on `/calls/{sid}/events`: every message it got, acks sent as they come. */
class Agent {
  readonly messages: Record<string, any>[] = [];
  readonly closed: Promise<number>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.messages.push(JSON.parse(data.toString()) as Record<string, any>);
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ack: this.messages.length }));
    });
    this.closed = new Promise((r) => ws.once("close", (code) => r(code)));
  }

  static connect(callSid: string, o: { control?: boolean; token?: string } = {}): Promise<Agent> {
    return Agent.connectTo(edge, callSid, o);
  }

  static connectTo(on: TestEdge, callSid: string, o: { control?: boolean; token?: string } = {}): Promise<Agent> {
    const q = o.control === false ? "?since=0" : "?control=1&since=0";
    const ws = new WebSocket(`${on.url.replace(/^http/, "ws")}/calls/${callSid}/events${q}`, {
      headers: { Authorization: `Bearer ${o.token ?? API_TOKEN}` },
    });
    const agent = new Agent(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(agent));
      ws.once("unexpected-response", (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  send(o: object): void {
    this.ws.send(JSON.stringify(o));
  }

  of(type: string): Record<string, any>[] {
    return this.messages.filter((m) => m.type === type);
  }

  errors(): string[] {
    return this.of("error").map((e) => e.code as string);
  }

  close(): void {
    this.ws.close();
  }
}

function pcmBytes(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length * 2);
  const v = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) v.setInt16(i * 2, pcm[i]!, true);
  return out;
}

function tone(rateHz: number, ms: number, freqHz = 440, amplitude = 6000): Int16Array {
  return Int16Array.from({ length: (rateHz * ms) / 1000 }, (_, i) =>
    Math.round(amplitude * Math.sin((2 * Math.PI * freqHz * i) / rateHz)),
  );
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** Media payload bytes Twilio received, in order. */
function mediaBytes(call: TwilioCall, from = 0): number {
  return call.received
    .slice(from)
    .filter((m) => m.event === "media")
    .reduce((n, m) => n + Buffer.from(m.media!.payload, "base64").length, 0);
}

describe("an agent speaks", () => {
  it("plays streamed 24 kHz chunks as 20 ms mu-law frames, with started and finished events", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    await waitFor("control granted", () => agent.of("control")[0]);
    const pcm = tone(24000, 1000);
    const bytes = pcmBytes(pcm);
    for (let at = 0; at < bytes.length; at += 9600) {
      agent.send({
        type: "play",
        id: "t1",
        encoding: "pcm16",
        sampleRate: 24000,
        audio: b64(bytes.subarray(at, at + 9600)),
        last: at + 9600 >= bytes.length,
      });
    }
    await waitFor("playback.finished", () => agent.of("playback.finished")[0], 10_000);
    const media = call.events("media");
    expect(media.every((m) => Buffer.from(m.media!.payload, "base64").length === 160)).toBe(true);
    expect(Math.abs(mediaBytes(call) - 8000)).toBeLessThanOrEqual(160);
    const started = agent.of("playback.started")[0]!;
    expect(started).toMatchObject({ type: "playback.started", playId: "t1", callSid: call.callSid });
    expect(started.queuedMs).toBeGreaterThanOrEqual(0);
    expect(agent.of("playback.finished")[0]).toMatchObject({ playId: "t1", durationMs: expect.any(Number) });
    // a 440 Hz tone, decimated and mu-law encoded: it still is one (energy where it should be)
    const heard = decodeMulaw(Buffer.concat(media.map((m) => Buffer.from(m.media!.payload, "base64"))));
    const rms = Math.sqrt(heard.slice(400, 7000).reduce((n, s) => n + s * s, 0) / 6600);
    expect(rms / (6000 / Math.SQRT2)).toBeGreaterThan(0.95);
    expect(rms / (6000 / Math.SQRT2)).toBeLessThan(1.05);
    expect(await call.hangUp()).toBe(1000);
    agent.close();
  });

  it("plays binary frames of the open utterance, and echoes an agent mark after it", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    await waitFor("control granted", () => agent.of("control")[0]);
    const mulaw = encodeMulaw(tone(8000, 400));
    agent.send({ type: "play", id: "bin", encoding: "mulaw", sampleRate: 8000 });
    agent.ws.send(mulaw.subarray(0, 1000), { binary: true });
    agent.ws.send(mulaw.subarray(1000), { binary: true });
    agent.send({ type: "play", id: "bin", last: true });
    agent.send({ type: "mark", name: "after-bin" });
    await waitFor("the mark's echo", () => agent.of("playback.mark")[0]);
    expect(agent.of("playback.mark")[0]).toMatchObject({ name: "after-bin", cleared: false });
    expect(agent.errors()).toEqual([]);
    const sent = Buffer.concat(call.events("media").map((m) => Buffer.from(m.media!.payload, "base64")));
    expect([...sent]).toEqual([...mulaw]);
    expect(await call.hangUp()).toBe(1000);
  });

  it("POST /calls/{sid}/play streams a WAV body into the call", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid, { control: false });
    const wav = wavBytes(tone(16000, 500), 16000);
    // a streamed body, in pieces
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        for (let at = 0; at < wav.length; at += 3001) {
          c.enqueue(wav.slice(at, at + 3001));
          await sleep(5);
        }
        c.close();
      },
    });
    const res = await fetch(`${edge.url}/calls/${call.callSid}/play?id=file1`, {
      method: "POST",
      headers: { ...bearer, "Content-Type": "audio/wav" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: "file1" });
    await waitFor("playback.finished", () => agent.of("playback.finished")[0]);
    expect(Math.abs(mediaBytes(call) - 4000)).toBeLessThanOrEqual(160);
    expect(await call.hangUp()).toBe(1000);
  });

  it("clear stops the agent: Twilio gets clear, no frame of it after, playback.cleared says what was heard", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    await waitFor("control granted", () => agent.of("control")[0]);
    agent.send({
      type: "play",
      id: "long",
      encoding: "mulaw",
      sampleRate: 8000,
      audio: b64(encodeMulaw(tone(8000, 2500))),
    });
    await waitFor("some media", () => mediaBytes(call) > 0);
    await sleep(300);
    agent.send({ type: "clear" });
    const cleared = await waitFor("playback.cleared", () => agent.of("playback.cleared")[0]);
    const clearAt = call.received.findIndex((m) => m.event === "clear");
    expect(clearAt).toBeGreaterThan(0);
    // the agent goes on streaming the cleared utterance: dropped at the edge
    agent.send({ type: "play", id: "long", audio: b64(encodeMulaw(tone(8000, 500))) });
    await sleep(300);
    expect(mediaBytes(call, clearAt)).toBe(0);
    expect(cleared).toMatchObject({ playId: "long", reason: "clear" });
    expect(cleared.heardMs).toBeGreaterThanOrEqual(0);
    expect(cleared.heardMs).toBeLessThanOrEqual(1300);
    expect(agent.errors()).toEqual([]);
    expect(await call.hangUp()).toBe(1000);
  });

  it("barge-in (BARGE_IN=speech): the caller's voice cuts the agent, with its latency", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    await waitFor("control granted", () => agent.of("control")[0]);
    agent.send({
      type: "play",
      id: "talk",
      encoding: "mulaw",
      sampleRate: 8000,
      audio: b64(encodeMulaw(tone(8000, 2500))),
    });
    await waitFor("some media", () => mediaBytes(call) > 0);
    // 300 ms of quiet, then the caller speaks (a loud tone) in real time
    await call.play(encodeMulaw(new Int16Array(2400)), { speed: 1 });
    const speaking = call.play(encodeMulaw(tone(8000, 800, 300, 9000)), { speed: 1 });
    const bargeIn = await waitFor("barge_in", () => agent.of("barge_in")[0], 5000);
    await speaking;
    expect(bargeIn).toMatchObject({ policy: "speech", playId: "talk" });
    expect(bargeIn.speechAudioMs).toBeGreaterThanOrEqual(280);
    expect(bargeIn.latencyMs).toEqual(expect.any(Number));
    expect(agent.of("speech.started")[0]).toMatchObject({ audioMs: bargeIn.speechAudioMs });
    expect(agent.of("playback.cleared")[0]).toMatchObject({ playId: "talk", reason: "barge_in" });
    const clearAt = call.received.findIndex((m) => m.event === "clear");
    expect(clearAt).toBeGreaterThan(0);
    await sleep(200);
    expect(mediaBytes(call, clearAt)).toBe(0);
    expect(await call.hangUp()).toBe(1000);
  });

  it("turns the caller's keys into dtmf events with their call time", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid, { control: false });
    await call.play(encodeMulaw(new Int16Array(800)), { speed: Infinity });
    call.sendText(call.script.dtmf("7"));
    const dtmf = await waitFor("a dtmf event", () => agent.of("dtmf")[0]);
    expect(dtmf).toMatchObject({ type: "dtmf", digit: "7", audioMs: 100, callSid: call.callSid });
    expect(await call.hangUp()).toBe(1000);
  });

  it("GREETING=agent: nothing plays on start", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(encodeMulaw(new Int16Array(1600)), { speed: Infinity });
    await sleep(200);
    expect(call.events("media")).toEqual([]);
    expect(await call.hangUp()).toBe(1000);
  });
});

describe("barge-in with BARGE_IN=meaningful (the default)", () => {
  let words: Awaited<ReturnType<typeof startTranscribingRunner>>;
  let meaningfulEdge: TestEdge;

  beforeAll(async () => {
    words = await startTranscribingRunner(new WordEngine(20));
    meaningfulEdge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${words.port}/relay`, GREETING: "agent" });
  });
  afterAll(async () => {
    await meaningfulEdge?.close();
    await words?.close();
  });

  // this engine gives no utterance start and the runner here runs no detector: the onset is the text's end
  it("cuts the agent on the first meaningful partial, not before", async () => {
    const call = await TwilioCall.start(meaningfulEdge);
    const agent = await Agent.connectTo(meaningfulEdge, call.callSid);
    await waitFor("control granted", () => agent.of("control")[0]);
    agent.send({
      type: "play",
      id: "answer",
      encoding: "mulaw",
      sampleRate: 8000,
      audio: b64(encodeMulaw(tone(8000, 3000))),
    });
    await waitFor("some media", () => mediaBytes(call) > 0);
    await call.play(encodeMulaw(tone(8000, 1000, 300, 9000)), { speed: 1 });
    const bargeIn = await waitFor("barge_in", () => agent.of("barge_in")[0], 5000);
    const meaningful = agent.of("meaningful")[0]!;
    expect(bargeIn).toMatchObject({
      policy: "meaningful",
      playId: "answer",
      speechAudioMs: meaningful.audioStartMs ?? meaningful.audioEndMs,
    });
    expect(bargeIn.latencyMs).toEqual(expect.any(Number));
    // partials before the meaningful one did not cut
    const partialsBefore = agent.messages.findIndex((m) => m.type === "meaningful");
    expect(agent.messages.slice(0, partialsBefore).some((m) => m.type === "barge_in")).toBe(false);
    expect(agent.of("playback.cleared")[0]).toMatchObject({ playId: "answer", reason: "barge_in" });
    expect(await call.hangUp()).toBe(1000);
  });
});

describe("a per-account greeting file (GREETING_ACCOUNTS)", () => {
  let files: Server;
  let greeted: TestEdge;
  const greeting = tone(16000, 400, 600, 5000);
  let fetches = 0;

  beforeAll(async () => {
    files = createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { "Content-Type": "audio/wav" });
      res.end(Buffer.from(wavBytes(greeting, 16000)));
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", () => r()));
    const { port } = files.address() as AddressInfo;
    greeted = await startTestEdge({
      RUNNER_URL: `ws://127.0.0.1:${runnerPort}/relay`,
      GREETING_ACCOUNTS: JSON.stringify({ ["AC" + "0".repeat(32)]: `http://127.0.0.1:${port}/hello.wav` }),
    });
  });
  afterAll(async () => {
    await greeted?.close();
    await new Promise((r) => files?.close(r));
  });

  it("plays the account's file instead of the chime, as utterance `greeting`, fetched once", async () => {
    for (let i = 0; i < 2; i++) {
      const call = await TwilioCall.start(greeted);
      const sub = await waitFor("a subscriber", () => Agent.connectTo(greeted, call.callSid, { control: false }));
      await waitFor("the greeting to finish", () => sub.of("playback.finished")[0]);
      expect(sub.of("playback.started")[0]).toMatchObject({ playId: "greeting" });
      expect(Math.abs(mediaBytes(call) - 3200)).toBeLessThanOrEqual(160);
      expect(call.events("mark").some((m) => m.mark?.name === "greeting")).toBe(false);
      expect(await call.hangUp()).toBe(1000);
      sub.close();
    }
    expect(fetches).toBe(1);
  });
});

describe("ozen call plays the caller faithfully", () => {
  it("hears the agent's audio in order, in real time, marks echoed only after it played", async () => {
    const identity = newIdentity();
    // no byte is 0xff (mu-law silence), so where the agent's audio starts is plain in what was heard
    const mulaw = encodeMulaw(tone(8000, 1500, 500, 7000)).map((b) => (b === 0xff ? 0x7f : b));
    let echoedAtMs = 0;
    let mediaAtMs = 0;
    const calling = placeCall({
      edgeUrl: edge.url,
      publicUrl: PUBLIC_BASE_URL,
      authToken: AUTH_TOKEN,
      audio: new Uint8Array(8000 * 3).fill(0xff),
      identity,
      keepHeard: true,
      onMessage: (m, at) => {
        const e = m as { event?: string };
        if (e.event === "media" && mediaAtMs === 0) mediaAtMs = at;
      },
    });
    await waitFor("the call to stream", async () => (await edge.callStats(identity.callSid)).state === "streaming");
    const agent = await Agent.connect(identity.callSid, { control: false });
    const res = await fetch(`${edge.url}/calls/${identity.callSid}/play?id=sim`, {
      method: "POST",
      headers: { ...bearer, "Content-Type": "audio/x-mulaw" },
      body: Buffer.from(mulaw),
    });
    expect(res.status).toBe(200);
    const finished = await waitFor("playback.finished", () => agent.of("playback.finished")[0], 10_000);
    echoedAtMs = finished.wallMs as number;
    const r = await calling;
    // the end mark came back only once 1.5 s had played (Twilio's buffer in real time)
    expect(echoedAtMs - (performance.timeOrigin + mediaAtMs)).toBeGreaterThanOrEqual(1400);
    // the caller heard exactly the agent's bytes, once, in order (silence around them)
    const heard = r.heard!;
    const first = heard.findIndex((b) => b !== 0xff);
    expect([...heard.subarray(first, first + mulaw.length)]).toEqual([...mulaw]);
    expect(r.outboundBufferMsMax).toBeLessThanOrEqual(1000 + 20);
  });
});

describe("bad control input (a bystander call streams throughout)", () => {
  let bystander: Bystander;
  beforeAll(async () => {
    bystander = await Bystander.start(edge);
  });
  afterAll(async () => {
    await bystander.finish(engine);
  });

  it("play before start or after the end: not_streaming on the socket, 409 by HTTP", async () => {
    const call = await TwilioCall.dial(edge);
    const agent = await Agent.connect(call.callSid);
    agent.send({ type: "play", id: "early", encoding: "mulaw", sampleRate: 8000, audio: b64(new Uint8Array(160)) });
    await waitFor("an error", () => agent.of("error")[0]);
    expect(agent.of("error")[0]).toMatchObject({ code: "not_streaming", id: "early" });
    const early = await fetch(`${edge.url}/calls/${call.callSid}/play`, {
      method: "POST",
      headers: { ...bearer, "Content-Type": "audio/x-mulaw" },
      body: new Uint8Array(1600),
    });
    expect(early.status).toBe(409);
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    expect(await call.hangUp()).toBe(1000);
    const late = await fetch(`${edge.url}/calls/${call.callSid}/play`, {
      method: "POST",
      headers: { ...bearer, "Content-Type": "audio/x-mulaw" },
      body: new Uint8Array(1600),
    });
    expect(late.status).toBe(409);
    expect((await late.json()).error).toBe("not_streaming");
  });

  it("an unsupported encoding or rate: an error naming the supported ones (and 415 by HTTP)", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    agent.send({ type: "play", id: "x", encoding: "pcm16", sampleRate: 22050, audio: b64(new Uint8Array(100)) });
    agent.send({ type: "play", id: "y", encoding: "opus", sampleRate: 48000 });
    await waitFor("two errors", () => agent.of("error").length >= 2);
    expect(agent.of("error").map((e) => [e.code, e.message])).toEqual([
      [
        "unsupported_format",
        "pcm16 at sampleRate 22050 is not supported; pcm16 at 8000, 16000, 24000 or 48000 Hz, or mulaw at 8000 Hz",
      ],
      [
        "unsupported_format",
        'encoding "opus" is not supported; pcm16 at 8000, 16000, 24000 or 48000 Hz, or mulaw at 8000 Hz',
      ],
    ]);
    const res = await fetch(`${edge.url}/calls/${call.callSid}/play`, {
      method: "POST",
      headers: { ...bearer, "Content-Type": "audio/mpeg" },
      body: new Uint8Array(10),
    });
    expect(res.status).toBe(415);
    expect((await res.json()).message).toMatch(/audio\/wav/);
    expect(await call.hangUp()).toBe(1000);
  });

  it("a chunk over 64 KiB, malformed marks and messages: refused, counted, the socket stays", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    agent.send({ type: "play", id: "big", encoding: "mulaw", sampleRate: 8000, audio: b64(new Uint8Array(70_000)) });
    agent.send({ type: "mark", name: "" });
    agent.send({ type: "mark", name: "ozen-p:1" });
    agent.send({ type: "mark" });
    agent.send({ type: "dance" });
    agent.send({ type: "play", id: "has space", encoding: "mulaw", sampleRate: 8000 });
    await waitFor("six errors", () => agent.of("error").length >= 6);
    expect(agent.errors()).toEqual([
      "chunk_too_large",
      "bad_message",
      "bad_message",
      "bad_message",
      "bad_message",
      "bad_message",
    ]);
    agent.send({
      type: "play",
      id: "fine",
      encoding: "mulaw",
      sampleRate: 8000,
      audio: b64(new Uint8Array(800)),
      last: true,
    });
    await waitFor("the fine one plays", () => agent.of("playback.finished")[0]);
    const s = await edge.callStats(call.callSid);
    expect(s.voice?.control.refused).toMatchObject({ chunk_too_large: 1, bad_message: 5 });
    expect(await call.hangUp()).toBe(1000);
  });

  it("a flood: past PLAYBACK_QUEUE_MS (3 s here) chunks are refused and counted", async () => {
    const call = await TwilioCall.start(edge);
    const agent = await Agent.connect(call.callSid);
    const second = b64(new Uint8Array(8000).fill(0x55));
    for (let i = 0; i < 8; i++)
      agent.send({ type: "play", id: "flood", encoding: "mulaw", sampleRate: 8000, audio: second });
    await waitFor("queue_full errors", () => agent.errors().filter((c) => c === "queue_full").length >= 1);
    const s = await waitFor("the refusals counted", async () => {
      const st = await edge.callStats(call.callSid);
      return (st.voice?.refused["queue_full"] ?? 0) >= 1 && st;
    });
    // the lead (1 s) went to Twilio at once, 3 s waited: at most 4 of the 8 seconds were taken
    expect(s.voice!.refused["queue_full"]).toBeGreaterThanOrEqual(4);
    expect(s.voice!.queueMsMax).toBeLessThanOrEqual(3000);
    expect(await call.hangUp()).toBe(1000);
  });

  it("two controlling sockets: the newest wins, the old one is told and refused", async () => {
    const call = await TwilioCall.start(edge);
    const first = await Agent.connect(call.callSid);
    await waitFor("first granted", () => first.of("control")[0]);
    // the first leaves an utterance open: the takeover ends it, so the new one can speak
    first.send({ type: "play", id: "theirs", encoding: "mulaw", sampleRate: 8000, audio: b64(new Uint8Array(400)) });
    const second = await Agent.connect(call.callSid);
    await waitFor("second granted", () => second.of("control")[0]);
    await waitFor("first told", () => first.of("control").find((m) => m.state === "lost"));
    first.send({ type: "clear" });
    await waitFor("first refused", () => first.of("error")[0]);
    expect(first.errors()).toEqual(["not_controller"]);
    second.send({
      type: "play",
      id: "mine",
      encoding: "mulaw",
      sampleRate: 8000,
      audio: b64(new Uint8Array(800)),
      last: true,
    });
    await waitFor("the new controller plays", () => second.of("playback.finished").find((e) => e.playId === "mine"));
    expect(second.errors()).toEqual([]);
    // the old one still reads the call's events
    await waitFor("the old one reads", () => first.of("playback.finished")[0]);
    expect(await call.hangUp()).toBe(1000);
  });

  it("a read-only token: ?control=1 is 403, its control messages are refused, POST play is 403", async () => {
    const call = await TwilioCall.start(edge);
    expect(
      await refusedUpgrade(edge, `/calls/${call.callSid}/events?control=1`, { Authorization: `Bearer ${READ_ONLY}` }),
    ).toBe(403);
    const reader = await Agent.connect(call.callSid, { control: false, token: READ_ONLY });
    reader.send({ type: "play", id: "nope", encoding: "mulaw", sampleRate: 8000, audio: b64(new Uint8Array(160)) });
    reader.ws.send(new Uint8Array(160), { binary: true });
    await waitFor("two refusals", () => reader.of("error").length >= 2);
    expect(reader.errors()).toEqual(["not_controller", "not_controller"]);
    const res = await fetch(`${edge.url}/calls/${call.callSid}/play`, {
      method: "POST",
      headers: { Authorization: `Bearer ${READ_ONLY}`, "Content-Type": "audio/x-mulaw" },
      body: new Uint8Array(160),
    });
    expect(res.status).toBe(403);
    expect(call.events("media")).toEqual([]);
    expect(await call.hangUp()).toBe(1000);
  });
});
