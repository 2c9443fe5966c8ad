/**
 * The runner's relay exposed to anyone who can reach it, driven over real loopback WebSockets:
 * credentials checked in the upgrade (401, no socket, no session), one call per socket, a call
 * taken over only with its own credential, seqs and pace bounded, no engine session outliving
 * its grace (Google's streams on the loopback Speech fake all ended), events kept for a detached
 * call and a tombstone for those lost, logs rate-limited, the stats behind a token, and no start
 * without RELAY_SECRET unless told --insecure-local.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  RELAY_CREDENTIAL_HEADER,
  encodeAudioFrame,
  encodeControl,
  parseRunnerToEdge,
  signRelayCredential,
} from "@ozen/shared";
import type { RelayStart, RunnerToEdge, TranscriptEvent } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "../src/index.js";
import type { RelayServerOptions } from "../src/index.js";
import type { Engine, EngineListener, EngineSession } from "../src/engines/engine.js";
import { GoogleEngine } from "../src/engines/google/engine.js";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { startSpeechServer } from "../src/testing/google-grpc.js";

const SECRET = "runner-test-relay-secret-0123";
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor<T>(what: string, probe: () => T, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface ScriptedSession {
  readonly start: RelayStart;
  readonly listener: EngineListener;
  readonly fedSamples: number[];
  ended: boolean;
}

/** An engine that records what it is fed and says a final when the test tells it to. */
class ScriptedEngine implements Engine {
  readonly name = "scripted";
  readonly sessions: ScriptedSession[] = [];

  open(start: RelayStart, listener: EngineListener): EngineSession {
    const s: ScriptedSession = { start, listener, fedSamples: [], ended: false };
    this.sessions.push(s);
    return {
      feed: (_pcm, startSample) => void s.fedSamples.push(startSample),
      end: async () => {
        s.ended = true;
      },
    };
  }

  /** The newest session of `callSid` says `text` as a final. */
  final(callSid: string, text: string): void {
    const s = this.sessions.filter((x) => x.start.callSid === callSid).at(-1)!;
    const endMs = s.fedSamples.length * 100;
    s.listener.final({ text, audioStartMs: Math.max(0, endMs - 100), audioEndMs: endMs });
  }
}

interface TestRunner {
  readonly server: RelayServer;
  readonly port: number;
  readonly logs: { level: string; msg: string; [k: string]: unknown }[];
}

async function startRunner(engine: Engine, o: Partial<RelayServerOptions> = {}): Promise<TestRunner> {
  const logs: TestRunner["logs"] = [];
  const server = new RelayServer({
    engine,
    port: 0,
    relaySecret: SECRET,
    log: (level, msg, fields) => void logs.push({ level, msg, ...fields }),
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
    ...o,
  });
  const port = await server.listen();
  cleanups.push(() => server.close());
  return { server, port, logs };
}

function startOf(callSid: string, resumeFromSeq = 0): Omit<RelayStart, "v"> {
  return {
    type: "start",
    callSid,
    streamSid: "MZ" + callSid,
    accountSid: "AC1",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: 100,
    tracks: ["inbound"],
    customParameters: {},
    resumeFromSeq,
  };
}

const block = (callSid: string, seq: number) =>
  encodeAudioFrame({ callId: callSid, seq, startSample: seq * 800, sampleRateHz: 8000, pcm: new Int16Array(800) });

interface Client {
  readonly ws: WebSocket;
  readonly messages: RunnerToEdge[];
  readonly closed: Promise<{ code: number; reason: string }>;
  events(): TranscriptEvent[];
  send(data: string | ArrayBuffer): void;
}

/** The headers of an upgrade that carries `credential` (undefined: none). */
const withCredential = (credential: string | undefined): Record<string, string> =>
  credential === undefined ? {} : { [RELAY_CREDENTIAL_HEADER]: credential };

/** A relay socket for `callSid` with a fresh credential (or the one given); resolves once open. */
async function connect(port: number, callSid: string, credential?: string): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, {
    headers: withCredential(credential ?? (await signRelayCredential(SECRET, callSid, Date.now()))),
  });
  const messages: RunnerToEdge[] = [];
  ws.on("message", (data, binary) => {
    if (binary) return;
    const r = parseRunnerToEdge(data.toString());
    if (r.ok) messages.push(r.message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  return {
    ws,
    messages,
    closed,
    events: () => messages.flatMap((m) => (m.type === "event" ? [m.event] : [])),
    send: (data) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(data);
    },
  };
}

/** The HTTP status an upgrade with `headers` gets (101 when it is taken; the socket is then closed). */
function upgradeStatus(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, { headers });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      resolve(101);
      ws.close();
    });
    ws.once("error", (e) => {
      if (!String(e).includes("Unexpected server response")) reject(e);
    });
  });
}

const acks = (c: Client) => c.messages.flatMap((m) => (m.type === "ack" ? [m] : []));

/** The close code of `c` once the runner closed it, or "still open" after `ms`. */
function closeCode(c: Client, ms = 5000): Promise<number | "still open"> {
  return Promise.race([c.closed.then((x) => x.code), sleep(ms).then(() => "still open" as const)]);
}

describe("relay credentials", () => {
  it("refuses upgrades with no, a malformed, a wrong, an expired or a replayed credential: 401, counted, no session", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const now = Date.now();
    const good = await signRelayCredential(SECRET, "CA1", now);
    expect(await upgradeStatus(port, {})).toBe(401);
    expect(await upgradeStatus(port, { [RELAY_CREDENTIAL_HEADER]: "not-a-credential" })).toBe(401);
    expect(await upgradeStatus(port, { Authorization: `Bearer ${good}` })).toBe(401); // not where it goes
    const wrong = await signRelayCredential("another-secret-0123456789", "CA1", now);
    expect(await upgradeStatus(port, withCredential(wrong))).toBe(401);
    const old = await signRelayCredential(SECRET, "CA1", now - 10 * 60_000);
    expect(await upgradeStatus(port, withCredential(old))).toBe(401);
    expect(await upgradeStatus(port, withCredential(good))).toBe(101);
    expect(await upgradeStatus(port, withCredential(good))).toBe(401); // the same credential again
    expect(server.relayAuthRefused).toMatchObject({
      missing: 2,
      malformed: 1,
      bad_signature: 1,
      expired: 1,
      replayed: 1,
    });
    expect(engine.sessions).toHaveLength(0);
    expect(server.activeCalls).toBe(0);
  });

  it("a stranger with another call's credential cannot take a live call: closed 4001, the call stays with its edge", async () => {
    const engine = new ScriptedEngine();
    const { port } = await startRunner(engine);
    const edge = await connect(port, "CAlive");
    edge.send(encodeControl(startOf("CAlive")));
    for (let seq = 0; seq < 3; seq++) edge.send(block("CAlive", seq));
    await waitFor("the call's blocks", () => engine.sessions[0]?.fedSamples.length === 3);

    const stranger = await connect(port, "CAstranger");
    stranger.send(encodeControl(startOf("CAlive")));
    expect(await closeCode(stranger)).toBe(4001);
    expect(stranger.messages).toContainEqual(expect.objectContaining({ type: "error", code: "call_mismatch" }));

    engine.final("CAlive", "מילים של השיחה");
    await waitFor("the final at the call's edge", () => edge.events().some((e) => e.type === "final"));
    expect(stranger.events()).toEqual([]);
    expect(engine.sessions).toHaveLength(1);
  });

  it("the edge's own reconnect (the call's credential) takes the call over and the old socket is closed 4004", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const first = await connect(port, "CAmove");
    first.send(encodeControl(startOf("CAmove")));
    first.send(block("CAmove", 0));
    await waitFor("block 0", () => engine.sessions[0]?.fedSamples.length === 1);
    const second = await connect(port, "CAmove");
    second.send(encodeControl(startOf("CAmove", 1)));
    expect(await closeCode(first)).toBe(4004);
    second.send(block("CAmove", 1));
    await waitFor("block 1", () => engine.sessions[0]?.fedSamples.length === 2);
    expect(engine.sessions).toHaveLength(1);
    expect(server.counters.callsTakenOver).toBe(1);
  });

  it("a second start on a socket closes it (4002) and opens no second engine session", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { insecureLocal: true, relaySecret: undefined });
    const c = await connect(port, "CAone", "ignored-when-auth-is-off");
    c.send(encodeControl(startOf("CAone")));
    c.send(encodeControl(startOf("CAtwo")));
    expect(await closeCode(c)).toBe(4002);
    expect(c.messages).toContainEqual(expect.objectContaining({ type: "error", code: "second_start" }));
    expect(engine.sessions.map((s) => s.start.callSid)).toEqual(["CAone"]);
    expect(server.counters.startsRefused).toBe(1);
  });
});

describe("a start's phrase hints", () => {
  it("phrases that break the rules are a protocol error with the reason; no engine session opens", async () => {
    const engine = new ScriptedEngine();
    const { port } = await startRunner(engine);
    const c = await connect(port, "CAhints");
    c.send(encodeControl({ ...startOf("CAhints"), phrases: ["ok", "bad\u0000"] }));
    await waitFor("the runner's answer", () => c.messages.find((m) => m.type === "error"));
    expect(c.messages).toContainEqual(
      expect.objectContaining({
        type: "error",
        message: 'relay start.phrases[1] "badU+0000" holds a control character (U+0000)',
      }),
    );
    expect(engine.sessions).toEqual([]);
  });

  it("a client's own ozen_phrases that are not phrases: logged once with the reason; the call goes on without them", async () => {
    const engine = new ScriptedEngine();
    const { port, logs } = await startRunner(engine);
    const c = await connect(port, "CAownhints");
    c.send(encodeControl({ ...startOf("CAownhints"), customParameters: { ozen_phrases: "x".repeat(101) } }));
    await waitFor("the engine session", () => engine.sessions[0]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: "the call's phrase hints are refused; it goes on without them",
        callSid: "CAownhints",
        error: `ozen_phrases[0] "${"x".repeat(24)}..." is 101 characters, at most 100`,
      }),
    );
  });
});

describe("seqs and pace", () => {
  it("a block with a huge seq is refused (4003), never acknowledged, and the edge's later blocks are fed", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const c = await connect(port, "CAseq");
    c.send(encodeControl(startOf("CAseq")));
    for (let seq = 0; seq < 5; seq++) c.send(block("CAseq", seq));
    c.send(block("CAseq", 0xffffffff));
    expect(await closeCode(c)).toBe(4003);
    expect(c.messages).toContainEqual(expect.objectContaining({ type: "error", code: "seq_out_of_window" }));
    expect(acks(c).every((a) => a.seq < 5)).toBe(true);

    const again = await connect(port, "CAseq");
    again.send(encodeControl(startOf("CAseq", 5)));
    for (let seq = 5; seq < 10; seq++) again.send(block("CAseq", seq));
    await waitFor("ten blocks fed", () => engine.sessions[0]!.fedSamples.length === 10);
    await waitFor("block 9 acknowledged", () => acks(again).some((a) => a.seq === 9));
    expect(engine.sessions[0]!.fedSamples).toEqual(Array.from({ length: 10 }, (_, i) => i * 800));
    expect(server.counters).toMatchObject({ blocksOutOfWindow: 1, duplicateBlocks: 0, gapBlocks: 0 });
  });

  it("audio a little ahead of real time beyond the relay buffer waits and is fed in order at its pace", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { relayBufferMs: 1000 });
    const c = await connect(port, "CAahead");
    c.send(encodeControl(startOf("CAahead")));
    const t0 = Date.now();
    for (let seq = 0; seq < 15; seq++) c.send(block("CAahead", seq)); // 1.5 s of audio at once
    await waitFor("the last block acknowledged", () => acks(c).some((a) => a.seq === 14));
    // the relay buffer's worth at once, the rest as real time allows it (not before)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(engine.sessions[0]!.fedSamples).toEqual(Array.from({ length: 15 }, (_, i) => i * 800));
    expect(server.counters).toMatchObject({ blocksPaced: 5, blocksTooFast: 0 });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("a call that keeps coming at 5x is slowed to real time (its socket not read meanwhile), not refused", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { relayBufferMs: 1000 });
    const c = await connect(port, "CA5x");
    c.send(encodeControl(startOf("CA5x")));
    const t0 = Date.now();
    for (let seq = 0; seq < 150; seq++) {
      c.send(block("CA5x", seq));
      await sleep(20); // 100 ms of audio every 20 ms: 5x real time, for 3 s
    }
    const elapsedMs = Date.now() - t0;
    const fed = engine.sessions[0]!.fedSamples.length;
    // the relay buffer's worth at once, then real time: about 4 s of audio, not 15
    expect(fed).toBeGreaterThanOrEqual(30);
    expect(fed).toBeLessThanOrEqual(Math.ceil((elapsedMs + 1000) / 100) + 1);
    expect(engine.sessions[0]!.fedSamples).toEqual(Array.from({ length: fed }, (_, i) => i * 800));
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    expect(server.counters.blocksTooFast).toBe(0);
    expect(server.counters.blocksPaced).toBeGreaterThan(0);
  });

  it("audio that keeps coming faster than real time is refused (4005) once its wait is full; what was fed stays in order", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { relayBufferMs: 1000, paceHoldMs: 600 });
    const c = await connect(port, "CAfast");
    c.send(encodeControl(startOf("CAfast")));
    for (let seq = 0; seq < 40; seq++) c.send(block("CAfast", seq)); // 4 s of audio at once
    expect(await closeCode(c)).toBe(4005);
    expect(c.messages).toContainEqual(expect.objectContaining({ type: "error", code: "too_fast" }));
    const fed = engine.sessions[0]!.fedSamples.length;
    expect(fed).toBeGreaterThanOrEqual(10);
    expect(fed).toBeLessThan(40);
    expect(engine.sessions[0]!.fedSamples).toEqual(Array.from({ length: fed }, (_, i) => i * 800));
    expect(Math.max(...acks(c).map((a) => a.seq))).toBe(fed - 1);
    expect(server.counters.blocksTooFast).toBeGreaterThanOrEqual(1);
  });
});

describe("no engine session outlives its grace", () => {
  it("many sockets, second starts, unauthenticated attempts and dropped connections: every session and Google stream ends", async () => {
    const speech = await startSpeechServer();
    cleanups.push(() => speech.close());
    const engine = new GoogleEngine(
      loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`, GOOGLE_INSECURE: "true" }),
    );
    cleanups.push(() => engine.close());
    const { server, port } = await startRunner(engine, { resumeGraceMs: 300 });
    const clients: Client[] = [];
    const unauthenticated: number[] = [];
    for (let i = 0; i < 20; i++) {
      const callSid = `CAleak${i}`;
      const c = await connect(port, callSid);
      clients.push(c);
      c.send(encodeControl(startOf(callSid)));
      c.send(block(callSid, 0));
      if (i % 4 === 1) for (let k = 0; k < 5; k++) c.send(encodeControl(startOf(`${callSid}x${k}`))); // closed at the first
      if (i % 4 === 2) unauthenticated.push(await upgradeStatus(port, {}));
    }
    // sessions open; then every socket goes, cleanly or not
    await waitFor("a Google stream per call", () => speech.seen.length >= 20);
    for (const [i, c] of clients.entries()) {
      if (i % 2 === 0) c.ws.close();
      else c.ws.terminate();
    }
    await waitFor("no call held", () => server.activeCalls === 0, 15_000);
    await waitFor("every Google stream ended", () => speech.seen.every((s) => s.ended), 15_000);
    expect(speech.seen).toHaveLength(20);
    expect(server.counters).toMatchObject({ callsStarted: 20, callsEnded: 20, startsRefused: 5 });
    expect(unauthenticated).toEqual([401, 401, 401, 401, 401]);
  }, 60_000);
});

describe("events across a lost socket", () => {
  it("events produced while the edge is away go to its next socket first, then the ack", async () => {
    const engine = new ScriptedEngine();
    const { port } = await startRunner(engine);
    const first = await connect(port, "CAaway");
    first.send(encodeControl(startOf("CAaway")));
    for (let seq = 0; seq < 3; seq++) first.send(block("CAaway", seq));
    await waitFor("blocks fed", () => engine.sessions[0]?.fedSamples.length === 3);
    first.ws.terminate();
    await first.closed;
    await sleep(50);
    engine.final("CAaway", "נאמר כשהקצה נעלם");
    const second = await connect(port, "CAaway");
    second.send(encodeControl(startOf("CAaway", 3)));
    await waitFor("the kept final", () => second.events().some((e) => e.type === "final"));
    const kinds = second.messages.map((m) => (m.type === "event" ? m.event.type : m.type));
    expect(kinds.slice(0, 2)).toEqual(["final", "ack"]);
  });

  it("a call given up with events no edge got leaves a tombstone: its next start is told how many were lost", async () => {
    const engine = new ScriptedEngine();
    const { server, port, logs } = await startRunner(engine, { resumeGraceMs: 200 });
    const first = await connect(port, "CAgone");
    first.send(encodeControl(startOf("CAgone")));
    first.send(block("CAgone", 0));
    await waitFor("block fed", () => engine.sessions[0]?.fedSamples.length === 1);
    first.ws.terminate();
    await first.closed;
    await sleep(50);
    engine.final("CAgone", "אחת");
    engine.final("CAgone", "שתיים");
    await waitFor("the call given up", () => server.activeCalls === 0);
    expect(logs.some((l) => l.msg === "call ended with transcript events no edge received")).toBe(true);

    const late = await connect(port, "CAgone");
    late.send(encodeControl(startOf("CAgone", 1)));
    late.send(encodeControl({ type: "stop", reason: "edge_restarted", lastSeq: 0 }));
    await waitFor("events_lost", () => late.messages.some((m) => m.type === "error"));
    // two finals and the call.ended the policy said when the grace ran out
    expect(late.messages[0]).toMatchObject({ type: "error", code: "events_lost", lost: { events: 3, finals: 2 } });
    expect(server.counters.eventsUndelivered).toBe(3);
  });
});

describe("logs about bad input", () => {
  it("10,000 bad frames give a handful of lines and the right count", async () => {
    const engine = new ScriptedEngine();
    const { server, port, logs } = await startRunner(engine);
    const c = await connect(port, "CAnoisy");
    c.send(encodeControl(startOf("CAnoisy")));
    const junk = new Uint8Array(10).fill(7).buffer;
    for (let i = 0; i < 10_000; i++) c.send(junk);
    c.send(encodeControl({ type: "stop", reason: "caller_hung_up", lastSeq: -1 }));
    await waitFor("the call ended", () => engine.sessions[0]?.ended && server.activeCalls === 0);
    await waitFor("the bad frames counted", () => server.counters.protocolErrors === 10_000);
    const lines = logs.filter((l) => l.level !== "info");
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(lines[0]).toMatchObject({ msg: "relay protocol error", callSid: "CAnoisy", kind: "bad_audio" });
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: "repeated relay problems (not logged one by one)",
        kind: "bad_audio",
        count: 9999,
      }),
    );
  });
});

describe("the runner's HTTP endpoints", () => {
  it("/stats and /metrics need the bearer token; /healthz and /readyz stay open", async () => {
    const { port } = await startRunner(new ScriptedEngine(), { metricsToken: "metrics-token-0123456789" });
    const get = (p: string, token?: string) =>
      fetch(`http://127.0.0.1:${port}${p}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
    expect((await get("/stats")).status).toBe(401);
    expect((await get("/metrics")).status).toBe(401);
    expect((await get("/stats", "wrong-token-0123456789")).status).toBe(401);
    const stats = await get("/stats", "metrics-token-0123456789");
    expect(stats.status).toBe(200);
    expect(await stats.json()).toMatchObject({ relayAuth: "on", relayAuthRefused: { missing: 0 } });
    const metrics = await (await get("/metrics", "metrics-token-0123456789")).text();
    expect(metrics).toMatch(/^ozen_runner_relay_auth_refused\{reason="bad_signature"\} 0$/m);

    const { port: noToken } = await startRunner(new ScriptedEngine());
    expect((await fetch(`http://127.0.0.1:${noToken}/stats`, { headers: { Authorization: "Bearer x" } })).status).toBe(
      401,
    );
    expect((await fetch(`http://127.0.0.1:${noToken}/metrics`)).status).toBe(401);
  });
});

describe("starting without RELAY_SECRET", () => {
  it("the server refuses to exist without a secret unless told insecureLocal", () => {
    expect(() => new RelayServer({ engine: new ScriptedEngine(), port: 0 })).toThrow(/RELAY_SECRET/);
  });

  /** Runs main.ts with the null engine; resolves with its exit code (null: it listened) and its output. */
  async function runMain(args: string[], env: Record<string, string>) {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), "--port", "0", "--engine", "null", ...args],
      { cwd: repo, env: { ...process.env, RELAY_SECRET: "", OZEN_RELAY_AUTH: "", ...env }, stdio: "pipe" },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.once("exit", (c) => resolve(c));
      const poll = setInterval(() => {
        if (/stt-runner listening/.test(out)) {
          clearInterval(poll);
          child.kill("SIGTERM");
          resolve(null);
        }
      }, 50);
      child.once("exit", () => clearInterval(poll));
    });
    return { code, out };
  }

  it("main.ts stops with a message naming RELAY_SECRET, and starts with --insecure-local saying so loudly", async () => {
    const refused = await runMain([], {});
    expect(refused.code).toBe(2);
    expect(refused.out).toMatch(/RELAY_SECRET is not set/);
    expect(refused.out).not.toMatch(/listening/);

    const insecure = await runMain(["--insecure-local"], {});
    expect(insecure.code).toBeNull();
    expect(insecure.out).toMatch(/RELAY AUTHENTICATION IS OFF/);

    const secure = await runMain([], { RELAY_SECRET: "main-test-relay-secret-0123" });
    expect(secure.code).toBeNull();
    expect(secure.out).not.toMatch(/AUTHENTICATION IS OFF/);
  }, 60_000);
});

describe("admission by capacity (OZEN_MAX_CALLS)", () => {
  const readyz = async (port: number) => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    return `${r.status} ${(await r.text()).trim()}`;
  };

  it("counts only authenticated starts: strangers cannot fill the runner", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { maxCalls: 2 });
    const now = Date.now();
    const wrong = await signRelayCredential("another-secret-0123456789", "CA9", now);
    for (let i = 0; i < 10; i++) {
      expect(await upgradeStatus(port, {})).toBe(401);
      expect(await upgradeStatus(port, withCredential(wrong))).toBe(401);
    }
    // a credential-holding socket that never starts a call holds no engine session either
    const idle = await connect(port, "CA8");
    expect(server.activeCalls).toBe(0);
    expect(engine.sessions).toHaveLength(0);
    expect(await readyz(port)).toBe("200 ready");
    // the real calls still get in
    const a = await connect(port, "CA1");
    a.send(encodeControl(startOf("CA1")));
    const b = await connect(port, "CA2");
    b.send(encodeControl(startOf("CA2")));
    await waitFor("two calls held", () => server.activeCalls === 2);
    expect(server.counters.startsAtCapacity).toBe(0);
    idle.ws.close();
  });

  it("refuses a new call beyond capacity with 4007, reports not-ready while full, resumes held calls, admits when one ends", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { maxCalls: 2 });
    const a = await connect(port, "CA1");
    a.send(encodeControl(startOf("CA1")));
    a.send(block("CA1", 0));
    const b = await connect(port, "CA2");
    b.send(encodeControl(startOf("CA2")));
    await waitFor("two calls held", () => server.activeCalls === 2);
    expect(await readyz(port)).toBe("503 full");

    const c = await connect(port, "CA3");
    c.send(encodeControl(startOf("CA3")));
    expect(await closeCode(c)).toBe(4007);
    const refusal = c.messages.find((m) => m.type === "error");
    expect(refusal).toMatchObject({ type: "error", code: "at_capacity" });
    expect(engine.sessions.map((s) => s.start.callSid)).toEqual(["CA1", "CA2"]);
    expect(server.counters.startsAtCapacity).toBe(1);

    // the edge of a held call comes back on a new socket while the runner is full: resumed, not refused
    const a2 = await connect(port, "CA1");
    a2.send(encodeControl(startOf("CA1", 0)));
    a2.send(block("CA1", 0));
    a2.send(block("CA1", 1));
    expect(await closeCode(a)).toBe(4004);
    await waitFor("the resumed call acknowledged", () => acks(a2).some((m) => m.seq === 1));
    expect(engine.sessions).toHaveLength(2);
    expect(server.counters.startsAtCapacity).toBe(1);

    // a call ends: room again, and the refused call is taken on its next try
    a2.send(encodeControl({ type: "stop", reason: "caller_hung_up", lastSeq: 1 }));
    await waitFor("the call ended", () => server.activeCalls === 1);
    expect(await readyz(port)).toBe("200 ready");
    const c2 = await connect(port, "CA3");
    c2.send(encodeControl(startOf("CA3")));
    await waitFor("the third call held", () => server.callState("CA3") === "attached");
    expect(await readyz(port)).toBe("503 full");
  });
});

describe("a detached call's engine grace", () => {
  it("closes the engine session at the engine grace, keeps the call, and opens a new session from the next block when the edge comes back", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine, { engineGraceMs: 100, resumeGraceMs: 60_000, maxCalls: 1 });
    const a = await connect(port, "CA1");
    a.send(encodeControl(startOf("CA1")));
    for (let seq = 0; seq < 5; seq++) a.send(block("CA1", seq));
    await waitFor("5 blocks fed", () => engine.sessions[0]?.fedSamples.length === 5);
    a.ws.terminate(); // a blip: no close frame
    await waitFor("the session closed at the engine grace", () => engine.sessions[0]!.ended);
    expect(server.callState("CA1")).toBe("detached");
    expect(server.engineSessions).toBe(0); // a parked call takes no place
    expect(server.full).toBe(false);
    // the edge comes back and replays what it kept: only the new block is fed, to a new session
    const b = await connect(port, "CA1");
    b.send(encodeControl(startOf("CA1", 0)));
    for (let seq = 0; seq < 6; seq++) b.send(block("CA1", seq));
    await waitFor("the new block acknowledged", () => acks(b).some((m) => m.seq === 5));
    expect(engine.sessions).toHaveLength(2);
    expect(engine.sessions[1]!.start.resumeFromSeq).toBe(5);
    expect(engine.sessions[1]!.fedSamples).toEqual([5 * 800]);
    // told at once that everything the first session heard is committed
    expect(acks(b)[0]).toMatchObject({ seq: 4, committedSeq: 4 });
    expect(server.engineSessions).toBe(1);
  });
});

/** The HTTP answer to an upgrade with `headers` that the runner refuses: its status and `Retry-After`. */
function refusedUpgrade(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, { headers });
    ws.once("unexpected-response", (_req, res) => {
      const retryAfter = res.headers["retry-after"];
      resolve({ status: res.statusCode ?? 0, ...(retryAfter === undefined ? {} : { retryAfter }) });
      ws.terminate();
    });
    ws.once("open", () => {
      reject(new Error("the upgrade was taken"));
      ws.close();
    });
    ws.once("error", (e) => {
      if (!String(e).includes("Unexpected server response")) reject(e);
    });
  });
}

describe("a draining runner", () => {
  /** A runner draining while one call's socket (which took the goaway) keeps it up. */
  async function drainingWithHeldCall() {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const held = await connect(port, "CAheld");
    held.send(encodeControl(startOf("CAheld")));
    await waitFor("the held call's session", () => engine.sessions.length === 1);
    const drained = server.drain(10_000); // waits for the held socket to go
    await waitFor("goaway to the held call", () => held.messages.some((m) => m.type === "goaway"));
    return { engine, server, port, held, drained };
  }

  it("refuses a new upgrade with HTTP 503 and Retry-After before the handshake, counted, no session; the open call gets goaway", async () => {
    const { engine, server, port, held, drained } = await drainingWithHeldCall();

    const fresh = await signRelayCredential(SECRET, "CAnew", Date.now());
    expect(await refusedUpgrade(port, withCredential(fresh))).toEqual({ status: 503, retryAfter: "1" });
    // the held call's own edge, redialling, is sent elsewhere too: its calls move
    const own = await signRelayCredential(SECRET, "CAheld", Date.now());
    expect(await refusedUpgrade(port, withCredential(own))).toEqual({ status: 503, retryAfter: "1" });
    expect(server.counters.callsRefused).toBe(2);
    expect(engine.sessions).toHaveLength(1);
    expect(server.callState("CAnew")).toBeUndefined();
    expect(await closeCode(held, 300), "goaway leaves the held call's socket open").toBe("still open");
    held.ws.close();
    await drained;
  });

  it("refuses a start on a socket accepted before the drain began: goaway, close 1012, counted, no session", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const early = await connect(port, "CAearly"); // the upgrade came before the drain
    const drained = server.drain(10_000);

    early.send(encodeControl(startOf("CAearly")));
    expect(await closeCode(early)).toBe(1012);
    expect(early.messages.map((m) => m.type)).toEqual(["goaway"]);
    expect(server.counters.callsRefused).toBe(1);
    expect(server.counters.callsStarted).toBe(0);
    expect(engine.sessions).toHaveLength(0);
    expect(server.callState("CAearly")).toBeUndefined();
    await drained;
  });

  it("refuses the held call's start on a socket accepted before the drain began: the call is not taken over", async () => {
    const engine = new ScriptedEngine();
    const { server, port } = await startRunner(engine);
    const held = await connect(port, "CAheld");
    held.send(encodeControl(startOf("CAheld")));
    await waitFor("the held call's session", () => engine.sessions.length === 1);
    const again = await connect(port, "CAheld"); // its edge's reconnect, upgraded before the drain
    const drained = server.drain(10_000);

    again.send(encodeControl(startOf("CAheld")));
    expect(await closeCode(again)).toBe(1012);
    expect(again.messages.map((m) => m.type)).toEqual(["goaway"]);
    expect(server.counters.callsRefused).toBe(1);
    expect(server.counters.callsTakenOver).toBe(0);
    expect(server.callState("CAheld")).toBe("attached");
    expect(engine.sessions).toHaveLength(1);
    held.ws.close();
    await drained;
  });

  it("still answers an upgrade with no credential 401, and does not verify a credential it refuses anyway", async () => {
    const { engine, server, port, held, drained } = await drainingWithHeldCall();

    expect(await refusedUpgrade(port, {})).toEqual({ status: 401 });
    expect(server.relayAuthRefused.missing).toBe(1);
    const forged = await signRelayCredential("another-secret-0123456789", "CAx", Date.now());
    expect(await refusedUpgrade(port, withCredential(forged))).toEqual({ status: 503, retryAfter: "1" });
    expect(server.relayAuthRefused.bad_signature).toBe(0); // the cheap answer came first
    expect(server.counters.callsRefused).toBe(1);
    expect(engine.sessions).toHaveLength(1);
    held.ws.close();
    await drained;
  });
});
