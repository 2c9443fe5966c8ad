/**
 * A crash of the edge under a live call, closed out on both sides: real workerd (Miniflare) with
 * its storage in a temp dir, a real runner over loopback. workerd is killed (SIGKILL) mid-call
 * after the call's first final; the runner produces more finals with no edge to take them; a new
 * workerd on the same storage wakes the call's object by its alarm, which ends the call
 * (`edge_restarted`) and collects what the runner kept, or is told what the runner lost.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";
import { findDescendants } from "../../tools/src/bench/procs.js";
import { startLocalEdge } from "../scripts/local-edge.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import {
  API_TOKEN,
  AUTH_TOKEN,
  PUBLIC_BASE_URL,
  RELAY_SECRET,
  TwilioCall,
  sleep,
  testAudio,
  waitFor,
} from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { apiJson } from "./transcribing.js";

/**
 * Says a final when the test tells it to, and "סוף" as its last final when a session that heard
 * audio ends. Each final covers the audio since the previous one (at least 10 ms, so finals said
 * with no new audio are still new to the edge's continuity).
 */
class ScriptedEngine implements Engine {
  readonly name = "scripted";
  private readonly sessions = new Map<string, { listener: EngineListener; heardMs: number; saidMs: number }>();

  open(start: RelayStart, listener: EngineListener): EngineSession {
    const s = { listener, heardMs: 0, saidMs: 0 };
    this.sessions.set(start.callSid, s);
    return {
      feed: (pcm, startSample) => void (s.heardMs = (startSample + pcm.length) / 8),
      end: async () => {
        if (s.heardMs > 0) this.final(start.callSid, "סוף");
      },
    };
  }

  /** Audio the session of `callSid` heard, ms (0 before it has one). */
  heardMs(callSid: string): number {
    return this.sessions.get(callSid)?.heardMs ?? 0;
  }

  /** A final from the end of the previous one to the audio heard so far. */
  final(callSid: string, text: string): void {
    const s = this.sessions.get(callSid)!;
    const startMs = s.saidMs;
    s.saidMs = Math.max(s.heardMs, s.saidMs + 10);
    s.listener.final({ text, audioStartMs: startMs, audioEndMs: s.saidMs });
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startRunner(engine: Engine, resumeGraceMs: number): Promise<{ server: RelayServer; port: number }> {
  const server = new RelayServer({
    engine,
    port: 0,
    relaySecret: RELAY_SECRET,
    resumeGraceMs,
    log: () => {},
    listenerFor: (start, send, clock) =>
      new TranscriptForwarder({ start, engine: engine.name, language: "he", send, clock }),
  });
  const port = await server.listen();
  cleanups.push(() => server.close());
  return { server, port };
}

/** The edge on workerd with its storage (Durable Objects and D1) in `dir`. */
function startEdge(dir: string, runnerPort: number): Promise<LocalEdge> {
  return startLocalEdge({
    verbose: false,
    persistDir: dir,
    vars: {
      PUBLIC_BASE_URL,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      API_TOKEN,
      RUNNER_URL: `ws://127.0.0.1:${runnerPort}/relay`,
      RELAY_SECRET,
      RELAY_BACKOFF_MIN_MS: "50",
      RELAY_BACKOFF_MAX_MS: "200",
    },
  });
}

/** Kills the edge's workerd with SIGKILL (no close frames, no cleanup) and lets Miniflare go. */
async function killEdge(edge: LocalEdge, workerdBefore: ReadonlySet<number>): Promise<void> {
  const pids = findDescendants(process.pid, "workerd").filter((p) => !workerdBefore.has(p));
  expect(pids.length, "the edge's workerd process").toBeGreaterThan(0);
  for (const pid of pids) process.kill(pid, "SIGKILL");
  // Miniflare's own servers in this process; its runtime is already gone
  await Promise.race([edge.close().catch(() => {}), sleep(5000)]);
}

interface Scenario {
  readonly dir: string;
  readonly engine: ScriptedEngine;
  readonly runner: { server: RelayServer; port: number };
  readonly call: TwilioCall;
}

/** A call that streams, has one final recorded, then loses its edge to SIGKILL. */
async function callThenCrash(resumeGraceMs: number): Promise<Scenario> {
  const dir = await mkdtemp(join(tmpdir(), "ozen-close-out-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const engine = new ScriptedEngine();
  const runner = await startRunner(engine, resumeGraceMs);
  const workerdBefore = new Set(findDescendants(process.pid, "workerd"));
  const edge = await startEdge(dir, runner.port);
  const asTest = { url: edge.url } as TestEdge;
  const call = await TwilioCall.start(asTest);
  await call.play(testAudio(50, 3), { speed: 2 });
  await waitFor("the runner to hear the call", () => engine.heardMs(call.callSid) >= 500);
  engine.final(call.callSid, "ראשון");
  await waitFor("the first final recorded", async () => {
    const v = await apiJson(asTest, `/calls/${call.callSid}/record`);
    return v.utterances.length === 1;
  });
  await call.play(testAudio(25, 4), { speed: 2 });
  await waitFor("the runner's blocks", () => runner.server.callState(call.callSid) === "attached");
  await killEdge(edge, workerdBefore);
  await waitFor("the runner to notice the edge is gone", () => runner.server.callState(call.callSid) === "detached");
  call.terminate();
  return { dir, engine, runner, call };
}

/** `GET /calls/{sid}` (D1 first) once the call is ended there. */
async function endedRecord(edge: LocalEdge, callSid: string, source: "d1" | "durable-object") {
  const asTest = { url: edge.url } as TestEdge;
  return waitFor(
    `the call ended in ${source}`,
    async () => {
      const r = await fetch(`${edge.url}/calls/${callSid}`, { headers: { Authorization: `Bearer ${API_TOKEN}` } });
      if (!r.ok) return undefined;
      const v = (await r.json()) as any;
      return v.source === source && v.call.status === "ended" ? v : undefined;
    },
    30_000,
  ).then(async (v) => ({ view: v, record: await apiJson(asTest, `/calls/${callSid}/record`) }));
}

describe("the edge restarted under a live call", () => {
  it("ends the call with edge_restarted and records the finals the runner produced meanwhile", async () => {
    const { dir, engine, runner, call } = await callThenCrash(60_000);
    engine.final(call.callSid, "שני");
    engine.final(call.callSid, "שלישי");
    await sleep(300);
    const restartedAt = Date.now();
    const edge = await startEdge(dir, runner.port);
    cleanups.push(() => edge.close());
    const { view, record } = await endedRecord(edge, call.callSid, "d1");
    const closeOutMs = Date.now() - restartedAt;
    expect(view.call).toMatchObject({ status: "ended", endReason: "edge_restarted" });
    // every final of the audio the runner received: before the crash, while the edge was gone, at the end
    expect(view.utterances.map((u: any) => u.rawText)).toEqual(["ראשון", "שני", "שלישי", "סוף"]);
    expect(new Set(view.utterances.map((u: any) => u.utteranceId)).size).toBe(4);
    expect(record.call.counters).toMatchObject({ closeOutEventsRecovered: 3 });
    expect(record.call.counters.runnerEventsLost).toBeUndefined();
    expect(record.call.counters.closeOutUnknown).toBeUndefined();
    expect(runner.server.activeCalls).toBe(0);
    const stats = (await (
      await fetch(`${edge.url}/calls/${call.callSid}/stats`, { headers: { Authorization: `Bearer ${API_TOKEN}` } })
    ).json()) as any;
    expect(stats).toMatchObject({ state: "ended", endReason: "edge_restarted" });
    console.log(JSON.stringify({ figure: "close_out_after_restart_ms", closeOutMs }));
  }, 120_000);

  it("when the runner gave up on the call first, the record says how many finals were lost", async () => {
    const { dir, engine, runner, call } = await callThenCrash(500);
    engine.final(call.callSid, "אבד");
    await waitFor("the runner to give the call up", () => runner.server.activeCalls === 0);
    const edge = await startEdge(dir, runner.port);
    cleanups.push(() => edge.close());
    const { view, record } = await endedRecord(edge, call.callSid, "d1");
    expect(view.call).toMatchObject({ status: "ended", endReason: "edge_restarted" });
    expect(view.utterances.map((u: any) => u.rawText)).toEqual(["ראשון"]);
    // "אבד", the runner's last final "סוף", and its call.ended
    expect(record.call.counters).toMatchObject({ runnerEventsLost: 3, runnerFinalsLost: 2 });
  }, 120_000);
});
