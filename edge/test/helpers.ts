/**
 * The edge test rig: the bundled Worker on real workerd (Miniflare), a real RelayServer whose
 * engine records every block it is fed, and a scripted Twilio built from the call simulator's
 * pieces (signed webhook, signed upgrade, TwilioStreamScript). Everything talks over loopback
 * WebSockets; tests wait for conditions, never for fixed times.
 */
import { connect, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { expect } from "vitest";
import WebSocket from "ws";
import { computeTwilioSignature, decodeMulaw } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import { RelayServer } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import { startLocalEdge } from "../scripts/local-edge.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import {
  FRAME_BYTES,
  FRAME_MS,
  TwilioStreamScript,
  newIdentity,
  openStream,
  requestTwiml,
} from "../../tools/src/simulator.js";
import type { CallIdentity } from "../../tools/src/simulator.js";
import type { CallStats } from "../src/call/stats.js";

export const AUTH_TOKEN = "test-token";
export const API_TOKEN = "api-token";
/** The relay's shared secret: the test edges sign with it, the test runners check it. */
export const RELAY_SECRET = "test-relay-secret-0123456789";
/** What Twilio would call; nothing listens there. The simulator signs against it. */
export const PUBLIC_BASE_URL = "http://127.0.0.1:1";
export const SAMPLES_PER_FRAME = FRAME_BYTES;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns something truthy and resolves with it. Throws after
 * `timeoutMs` naming `what` and the last value seen, so a failure says what never happened.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 10_000,
): Promise<Exclude<T, false | 0 | "" | null | undefined>> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last as Exclude<T, false | 0 | "" | null | undefined>;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    }
    await sleep(25);
  }
}

/** A port nothing listens on right now (for a runner started later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

// ---- audio ----

/** `frames` frames of deterministic pseudo-random mu-law (every code appears): bit-exact checks. */
export function testAudio(frames: number, seed = 1): Uint8Array {
  const out = new Uint8Array(frames * FRAME_BYTES);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function concatPcm(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Asserts two PCM buffers are identical, reporting the length and the first differing sample. */
export function expectSameAudio(actual: Int16Array, expected: Int16Array): void {
  let firstMismatch = -1;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      firstMismatch = i;
      break;
    }
  }
  expect({ samples: actual.length, firstMismatch }).toEqual({ samples: expected.length, firstMismatch: -1 });
}

// ---- the runner ----

export interface FedBlock {
  readonly startSample: number;
  readonly pcm: Int16Array;
}

export interface RecordedSession {
  readonly start: RelayStart;
  readonly blocks: FedBlock[];
  ended: boolean;
}

/** An engine that keeps a copy of every block fed to it, per engine session (one per call per runner). */
export class RecordingEngine implements Engine {
  readonly name = "recording";
  readonly sessions: RecordedSession[] = [];

  open(start: RelayStart): EngineSession {
    const session: RecordedSession = { start, blocks: [], ended: false };
    this.sessions.push(session);
    return {
      // the PCM is a view into the socket's buffer: copy it
      feed: (pcm, startSample) => void session.blocks.push({ startSample, pcm: pcm.slice() }),
      end: async () => {
        session.ended = true;
      },
    };
  }

  sessionsFor(callSid: string): RecordedSession[] {
    return this.sessions.filter((s) => s.start.callSid === callSid);
  }

  /** The only session of a call on this engine; fails the test when there is none or several. */
  sessionFor(callSid: string): RecordedSession {
    const s = this.sessionsFor(callSid);
    expect(s.length, `engine sessions for ${callSid}`).toBe(1);
    return s[0]!;
  }

  samplesFed(callSid: string): number {
    return this.sessionsFor(callSid).reduce((n, s) => n + s.blocks.reduce((m, b) => m + b.pcm.length, 0), 0);
  }
}

/**
 * The audio of one engine session, checking that its blocks follow each other with no gap or
 * overlap in audio time.
 */
export function sessionAudio(blocks: readonly FedBlock[], firstSample = 0): Int16Array {
  let next = firstSample;
  for (const [i, b] of blocks.entries()) {
    if (b.startSample !== next) throw new Error(`block ${i} starts at sample ${b.startSample}, expected ${next}`);
    next += b.pcm.length;
  }
  return concatPcm(blocks.map((b) => b.pcm));
}

export interface TestRunner {
  readonly server: RelayServer;
  readonly port: number;
  readonly engine: RecordingEngine;
  readonly logs: string[];
  close(): Promise<void>;
}

/** A real RelayServer with a recording engine, on `port` (0: any). */
export async function startRunner(engine = new RecordingEngine(), port = 0): Promise<TestRunner> {
  const logs: string[] = [];
  const server = new RelayServer({
    engine,
    port,
    relaySecret: RELAY_SECRET,
    log: (level, msg, fields) => void logs.push(JSON.stringify({ level, msg, ...fields })),
  });
  const bound = await server.listen();
  return { server, port: bound, engine, logs, close: () => server.close() };
}

/**
 * A TCP proxy in front of the runner whose connections a test can cut: the relay link drops
 * while the runner process (and its engine sessions) lives on.
 */
export interface CuttableProxy {
  readonly port: number;
  /** Connections made through it so far. */
  readonly connections: number;
  /** Drops every open connection, both ways, at once. */
  cut(): void;
  close(): Promise<void>;
}

export function startProxy(targetPort: number): Promise<CuttableProxy> {
  const open = new Set<Socket>();
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(targetPort, "127.0.0.1");
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => {
        open.delete(a);
        b.destroy();
      });
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address() as AddressInfo;
      resolve({
        port: addr.port,
        get connections() {
          return connections;
        },
        cut: () => {
          for (const s of open) s.destroy();
        },
        close: () => {
          for (const s of open) s.destroy();
          return new Promise<void>((r) => server.close(() => r()));
        },
      });
    });
  });
}

// ---- the edge ----

/** The call record the stats endpoint answers ("unknown" for a call the edge never saw). */
export type CallStatsView = Omit<CallStats, "state"> & { state: CallStats["state"] | "unknown" };

export interface TestEdge {
  readonly url: string;
  readonly local: LocalEdge;
  /** Every line the Worker logged. */
  readonly logs: string[];
  /** GET /calls/{sid}/stats with the API token. */
  callStats(callSid: string, o?: { naive?: boolean }): Promise<CallStatsView>;
  /** GET /stats: the edge-wide counters. */
  counters(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export const bearer = { Authorization: `Bearer ${API_TOKEN}` };

/** The bundled Worker on workerd with test defaults; `vars` must name RUNNER_URL. */
export async function startTestEdge(vars: Record<string, string> & { RUNNER_URL: string }): Promise<TestEdge> {
  const logs: string[] = [];
  const local = await startLocalEdge({
    vars: {
      PUBLIC_BASE_URL,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      API_TOKEN,
      INGEST_ACK: "block",
      RELAY_BACKOFF_MIN_MS: "50",
      RELAY_BACKOFF_MAX_MS: "200",
      RELAY_SECRET,
      ...vars,
    },
    onOutput: (line) => void logs.push(line),
  });
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await fetch(local.url + path, { headers: bearer });
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    url: local.url,
    local,
    logs,
    callStats: (callSid, o) => getJson(`/calls/${callSid}/stats${o?.naive ? "?naive" : ""}`),
    counters: () => getJson("/stats"),
    close: () => local.close(),
  };
}

// ---- Twilio ----

export interface DialOptions {
  readonly identity?: CallIdentity;
  /** Replaces the `start.customParameters` the TwiML gave (e.g. a wrong ozen_token). */
  readonly customParameters?: Record<string, string>;
  /** Extra parameters added to those the TwiML gave. */
  readonly extraParameters?: Record<string, string>;
  /** The benchmark's naive route instead of the CallSession. */
  readonly naive?: boolean;
  /** Echo marks the edge sends, as Twilio does when their audio has played (default: on). */
  readonly echoMarks?: boolean;
}

/** The edge -> Twilio messages, parsed. */
export interface EdgeMessage {
  readonly event: string;
  readonly streamSid?: string;
  readonly media?: { readonly payload: string };
  readonly mark?: { readonly name: string };
}

/**
 * One scripted Twilio stream: the caller's side of a call. Tracks the audio it sent (decoded,
 * as the engine should hear it) so tests compare what reached the engine against it.
 */
export class TwilioCall {
  readonly received: EdgeMessage[] = [];
  /** PCM the engine should get, in order (concealed frames as silence). */
  private readonly expected: Int16Array[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;

  private constructor(
    readonly ws: WebSocket,
    readonly script: TwilioStreamScript,
    readonly identity: CallIdentity,
    echoMarks: boolean,
  ) {
    ws.on("error", () => {}); // the close event tells the tests what happened
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as EdgeMessage;
      this.received.push(m);
      const name = m.mark?.name;
      if (m.event === "mark" && echoMarks && name !== undefined && !name.startsWith("ozen-ack:")) {
        this.sendText(script.mark(name));
      }
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
  }

  /** The webhook (signed) and the stream upgrade (signed), as Twilio does them. Sends nothing yet. */
  static async dial(edge: TestEdge, o: DialOptions = {}): Promise<TwilioCall> {
    const identity = o.identity ?? newIdentity();
    const twiml = await requestTwiml({
      edgeUrl: edge.url,
      publicUrl: PUBLIC_BASE_URL,
      authToken: AUTH_TOKEN,
      identity,
    });
    const streamUrl = o.naive ? twiml.streamUrl.replace("/twilio/stream/", "/twilio/stream-naive/") : twiml.streamUrl;
    const ws = await openStream({ edgeUrl: edge.url, authToken: AUTH_TOKEN, streamUrl });
    const parameters = o.customParameters ?? { ...twiml.parameters, ...o.extraParameters };
    return new TwilioCall(ws, new TwilioStreamScript(identity, parameters), identity, o.echoMarks ?? true);
  }

  /** `dial`, then `connected` and `start`. */
  static async start(edge: TestEdge, o: DialOptions = {}): Promise<TwilioCall> {
    const call = await TwilioCall.dial(edge, o);
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    return call;
  }

  get callSid(): string {
    return this.identity.callSid;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  sendText(text: string): void {
    if (this.open) this.ws.send(text);
  }

  sendBinary(bytes: Uint8Array): void {
    if (this.open) this.ws.send(bytes, { binary: true });
  }

  /** One media message carrying `mulaw` (any length); the engine should hear it decoded. */
  sendMedia(mulaw: Uint8Array): void {
    this.sendText(this.script.media(mulaw).text);
    this.expected.push(decodeMulaw(mulaw));
  }

  /**
   * A media message whose payload is replaced by `payload` (e.g. not base64). Its timestamp
   * advances 20 ms like a real frame's; `expectSilence`: the engine should hear 20 ms of zeros.
   */
  sendMediaWithPayload(payload: string, expectSilence: boolean): void {
    const m = JSON.parse(this.script.media(new Uint8Array(FRAME_BYTES)).text) as { media: { payload: string } };
    m.media.payload = payload;
    this.sendText(JSON.stringify(m));
    if (expectSilence) this.expected.push(new Int16Array(SAMPLES_PER_FRAME));
  }

  /**
   * Frames Twilio numbered and stamped but never delivered (dropped upstream, error 31930): the
   * edge should hear the hole in the timestamps and fill it with silence.
   */
  loseUpstream(frames: number): void {
    for (let i = 0; i < frames; i++) {
      this.script.media(new Uint8Array(FRAME_BYTES));
      this.expected.push(new Int16Array(SAMPLES_PER_FRAME));
    }
  }

  /**
   * Sends `mulaw` as 20 ms frames, `speed` times real time (Infinity: as fast as possible).
   * Stops early when `signal` aborts or the socket closes. Resolves with the frames sent.
   */
  async play(mulaw: Uint8Array, o: { speed: number; signal?: AbortSignal }): Promise<number> {
    const frames = Math.floor(mulaw.length / FRAME_BYTES);
    const t0 = performance.now();
    let sent = 0;
    for (; sent < frames; sent++) {
      const wait = t0 + (sent * FRAME_MS) / o.speed - performance.now();
      if (wait >= 1) await sleep(wait);
      if (!this.open || o.signal?.aborted) break;
      this.sendMedia(mulaw.subarray(sent * FRAME_BYTES, (sent + 1) * FRAME_BYTES));
    }
    return sent;
  }

  /** `stop`, then waits for the edge to close the socket (it does once the runner has every block). */
  async hangUp(): Promise<number> {
    this.sendText(this.script.stop());
    return this.closed;
  }

  /** The caller vanishes: the TCP connection drops with no `stop` and no close frame. */
  terminate(): void {
    this.ws.terminate();
  }

  /** Everything the engine should have heard from this call, in order. */
  expectedAudio(): Int16Array {
    return concatPcm(this.expected);
  }

  get expectedSamples(): number {
    return this.expected.reduce((n, p) => n + p.length, 0);
  }

  events(event: string): EdgeMessage[] {
    return this.received.filter((m) => m.event === event);
  }
}

/**
 * Waits until the engine has fed `call`'s whole expected audio (from one session) and checks
 * it is bit-exact, contiguous from sample 0. Returns the session.
 */
export async function expectEngineHeard(engine: RecordingEngine, call: TwilioCall): Promise<RecordedSession> {
  const want = call.expectedSamples;
  await waitFor(`${want} samples of ${call.callSid} at the engine`, () => engine.samplesFed(call.callSid) >= want);
  const session = engine.sessionFor(call.callSid);
  expectSameAudio(sessionAudio(session.blocks), call.expectedAudio());
  return session;
}

/**
 * A second, well-behaved call running alongside a test's misbehaving one: it streams in real
 * time until `finish()`, hangs up, and checks that every frame it sent reached the engine.
 */
export class Bystander {
  private readonly abort = new AbortController();
  private readonly playing: Promise<number>;

  private constructor(readonly call: TwilioCall) {
    // real-time pace: light, and it overlaps the whole test (at most 20 s of audio)
    this.playing = call.play(testAudio(1000, 7), { speed: 1, signal: this.abort.signal });
  }

  static async start(edge: TestEdge): Promise<Bystander> {
    return new Bystander(await TwilioCall.start(edge));
  }

  /** Stops streaming (after at least `minFrames`), hangs up and checks the engine heard it all. */
  async finish(engine: RecordingEngine, minFrames = 10): Promise<void> {
    await waitFor("the bystander to stream", () => this.call.expectedSamples >= minFrames * SAMPLES_PER_FRAME);
    this.abort.abort();
    await this.playing;
    expect(await this.call.hangUp(), "bystander close code").toBe(1000);
    await expectEngineHeard(engine, this.call);
  }
}

/** A signed upgrade to `path` that must be refused: resolves with the HTTP status. */
export async function upgradeStatus(
  edge: TestEdge,
  path: string,
  signature: "valid" | "bad" | "none",
): Promise<number> {
  const headers: Record<string, string> = {};
  if (signature !== "none") {
    const url = PUBLIC_BASE_URL.replace(/^http/, "ws") + path;
    headers["X-Twilio-Signature"] = await computeTwilioSignature(signature === "bad" ? "wrong" : AUTH_TOKEN, url);
  }
  const ws = new WebSocket(edge.url.replace(/^http/, "ws") + path, "audio.twilio.com", { headers });
  ws.on("error", () => {}); // after the refusal, terminating may report one more error
  return new Promise<number>((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      ws.terminate();
      reject(new Error(`upgrade to ${path} was accepted`));
    });
    ws.once("error", (e) => reject(e));
  });
}
