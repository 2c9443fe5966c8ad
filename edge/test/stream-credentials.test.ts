/**
 * The stream's credentials on real workerd with persistent storage: Twilio opens one Media Stream
 * per call and never reconnects one, so a captured signed upgrade with its `ozen_token` is
 * refused (409) once the call has streamed: after it ended, and after workerd restarted on the
 * same storage (the object reloaded with nothing in memory); the call's records, in its object
 * and in D1, stay as they were. A token that expired, or that was minted for another call, is
 * refused on `start` (close 1008, bad_token) and nothing reaches the runner; one an application
 * minted itself, as docs/security.md shows, is taken.
 */
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeTwilioSignature } from "@ozen/shared";
import { TwilioStreamScript, newIdentity, requestTwiml } from "../../tools/src/simulator.js";
import type { CallIdentity } from "../../tools/src/simulator.js";
import { startLocalEdge } from "../scripts/local-edge.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import {
  API_TOKEN,
  AUTH_TOKEN,
  PUBLIC_BASE_URL,
  RELAY_SECRET,
  TwilioCall,
  bearer,
  startRunner,
  testAudio,
  waitFor,
} from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";
import { apiJson, startTalkingRunner } from "./transcribing.js";
import type { TalkingRunner } from "./transcribing.js";

/** A token minted as docs/security.md shows, expiring `ttlS` after `nowMs` (negative: in the past). */
function mintAsDocumented(secret: string, callSid: string, ttlS: number, nowMs = Date.now()): string {
  const expiresAtS = Math.floor(nowMs / 1000) + ttlS;
  const nonce = randomBytes(16).toString("base64url");
  const mac = createHmac("sha256", secret)
    .update(`ozen_token:v1:${callSid}:${expiresAtS}:${nonce}`)
    .digest("base64url");
  return `v1.${expiresAtS}.${nonce}.${mac}`;
}

/** What someone who watched a call's setup holds: its stream URL, the upgrade's signature and its token. */
interface Captured {
  readonly identity: CallIdentity;
  readonly streamUrl: string;
  readonly signature: string;
  readonly parameters: Record<string, string>;
}

async function capture(edge: TestEdge): Promise<Captured> {
  const identity = newIdentity();
  const twiml = await requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC_BASE_URL, authToken: AUTH_TOKEN, identity });
  const signature = await computeTwilioSignature(AUTH_TOKEN, twiml.streamUrl);
  return { identity, streamUrl: twiml.streamUrl, signature, parameters: twiml.parameters };
}

/**
 * Plays a captured call's stream: the signed upgrade, then (when it is accepted) `connected`,
 * `start` with the captured parameters, `frames` frames of audio and `stop`. Resolves with the
 * upgrade's HTTP status (101 when accepted, once the edge closed the socket).
 */
function playStream(edge: TestEdge, c: Captured, frames: number, seed: number): Promise<number> {
  const ws = new WebSocket(edge.url.replace(/^http/, "ws") + new URL(c.streamUrl).pathname, "audio.twilio.com", {
    headers: { "X-Twilio-Signature": c.signature },
  });
  ws.on("error", () => {});
  return new Promise<number>((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      const script = new TwilioStreamScript(c.identity, c.parameters);
      ws.send(script.connected());
      ws.send(script.start());
      const audio = testAudio(frames, seed);
      for (let i = 0; i < frames; i++) ws.send(script.media(audio.subarray(i * 160, (i + 1) * 160)).text);
      ws.send(script.stop());
      ws.once("close", () => resolve(101));
    });
    ws.once("error", reject);
  });
}

/** The call as its object keeps it and as D1 has it. */
async function records(edge: TestEdge, local: LocalEdge, callSid: string): Promise<any> {
  const view = await apiJson(edge, `/calls/${callSid}/record`);
  const db = await local.d1();
  const call = await db.prepare("SELECT * FROM calls WHERE call_sid = ?").bind(callSid).first();
  const utterances = (await db.prepare("SELECT * FROM utterances WHERE call_sid = ? ORDER BY n").bind(callSid).all())
    .results;
  return {
    object: { call: view.call, utterances: view.utterances, timeline: view.timeline },
    d1: { call, utterances },
  };
}

/** `records` less the object's call counters (the delivery counters it had not saved yet). */
function withoutCounters(r: any): unknown {
  return { ...r, object: { ...r.object, call: { ...r.object.call, counters: undefined } } };
}

describe("a captured signed upgrade with its token, replayed", () => {
  let runner: TalkingRunner;
  let dir: string;
  let local: LocalEdge | undefined;

  beforeAll(async () => {
    runner = await startTalkingRunner(undefined, RELAY_SECRET);
    dir = await mkdtemp(join(tmpdir(), "ozen-replay-"));
  });

  afterAll(async () => {
    await local?.close();
    await runner?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<{ local: LocalEdge; edge: TestEdge }> => {
    const l = await startLocalEdge({
      verbose: false,
      persistDir: dir,
      vars: {
        PUBLIC_BASE_URL,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        API_TOKEN,
        RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
        RELAY_SECRET,
        RECORDS_FLUSH_FINALS: "1",
      },
    });
    return { local: l, edge: { url: l.url } as TestEdge };
  };

  it("is refused (409) after the call ended, and after workerd restarted on the same storage; the records stay as they were", async () => {
    let edge: TestEdge;
    ({ local, edge } = await start());
    const captured = await capture(edge);
    const callSid = captured.identity.callSid;
    // the real call: 2 s of audio, one final per 400 ms
    expect(await playStream(edge, captured, 100, 1)).toBe(101);
    await waitFor("the call's 5 finals and its end in D1", async () => {
      const db = await local!.d1();
      const row = await db
        .prepare(
          "SELECT c.status, (SELECT count(*) FROM utterances WHERE call_sid = ?1) AS n FROM calls c WHERE call_sid = ?1",
        )
        .bind(callSid)
        .first<{ status: string; n: number }>();
      return row?.status === "ended" && row.n === 5;
    });
    const before = await records(edge, local, callSid);

    // the same object, the call ended
    expect(await playStream(edge, captured, 50, 2)).toBe(409);
    expect(await records(edge, local, callSid)).toEqual(before);

    // a new workerd on the same storage: the object reloads with nothing in memory
    await local.close();
    local = undefined;
    ({ local, edge } = await start());
    const reloaded = await records(edge, local, callSid);
    // (the object's delivery counters since its last save stayed in the memory of the old one)
    expect(withoutCounters(reloaded)).toEqual(withoutCounters(before));
    expect(await playStream(edge, captured, 50, 3)).toBe(409);
    expect(await records(edge, local, callSid)).toEqual(reloaded);
    const stats = await apiJson(edge, `/calls/${callSid}/stats`);
    expect(stats).toMatchObject({ state: "ended", framesIn: 100 });
  });
});

describe("the call token on start", () => {
  let runner: TestRunner;
  let edge: TestEdge;

  beforeAll(async () => {
    runner = await startRunner();
    const l = await startLocalEdge({
      verbose: false,
      vars: {
        PUBLIC_BASE_URL,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        API_TOKEN,
        RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
        RELAY_SECRET,
      },
    });
    edge = {
      url: l.url,
      local: l,
      logs: [],
      callStats: async (sid) =>
        (await (await fetch(`${l.url}/calls/${sid}/stats`, { headers: bearer })).json()) as never,
      counters: async () => ({}),
      close: () => l.close(),
    };
  });

  afterAll(async () => {
    await edge?.close();
    await runner?.close();
  });

  /** Starts a stream whose `start` carries `token`, sends audio, and returns how it ended. */
  async function startWith(token: string, identity = newIdentity()) {
    const call = await TwilioCall.dial(edge, { identity, customParameters: { ozen_token: token } });
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    call.sendMedia(testAudio(10, 4));
    const code = await call.closed;
    const stats = await waitFor("the refused call's stats", async () => {
      const s = await edge.callStats(call.callSid);
      return s.state === "ended" && s;
    });
    return { code, stats, callSid: call.callSid };
  }

  it("takes a stream whose token the application minted itself (docs/security.md), with no webhook from the edge", async () => {
    const identity = newIdentity();
    const streamUrl = `${PUBLIC_BASE_URL.replace(/^http/, "ws")}/twilio/stream/${identity.callSid}`;
    const own: Captured = {
      identity,
      streamUrl,
      signature: await computeTwilioSignature(AUTH_TOKEN, streamUrl),
      parameters: { ozen_token: mintAsDocumented(AUTH_TOKEN, identity.callSid, 300), ozen_phrases: "שלום" },
    };
    expect(await playStream(edge, own, 10, 8)).toBe(101);
    await waitFor("the runner session to end", () => runner.engine.sessionsFor(identity.callSid)[0]?.ended);
    expect(runner.engine.samplesFed(identity.callSid)).toBe(10 * 160);
    expect(runner.engine.sessionFor(identity.callSid).start.customParameters).toEqual({ ozen_phrases: "שלום" });
  });

  it("refuses a token that expired (close 1008, bad_token); nothing reaches the runner", async () => {
    const identity = newIdentity();
    // CALL_TOKEN_SECRET is unset: the edge's secret is TWILIO_AUTH_TOKEN
    const expired = mintAsDocumented(AUTH_TOKEN, identity.callSid, -300);
    const { code, stats } = await startWith(expired, identity);
    expect(code).toBe(1008);
    expect(stats.bad["bad_token"]).toBe(1);
    expect(stats.relay.connects).toBe(0);
    expect(runner.engine.sessionsFor(identity.callSid)).toEqual([]);
  });

  it("refuses another call's token, fresh from the webhook (close 1008, bad_token); nothing reaches the runner", async () => {
    const other = await capture(edge);
    const { code, stats, callSid } = await startWith(other.parameters["ozen_token"]!);
    expect(code).toBe(1008);
    expect(stats.bad["bad_token"]).toBe(1);
    expect(runner.engine.sessionsFor(callSid)).toEqual([]);
  });

  it("refuses a token used once already: a second stream while the call runs, and after it ended (409)", async () => {
    const captured = await capture(edge);
    const call = await TwilioCall.dial(edge, { identity: captured.identity, customParameters: captured.parameters });
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    await call.play(testAudio(10, 5), { speed: Infinity });
    expect(await playStream(edge, captured, 10, 6)).toBe(409);
    expect(await call.hangUp()).toBe(1000);
    expect(await playStream(edge, captured, 10, 7)).toBe(409);
    await waitFor("the runner session to end", () => runner.engine.sessionsFor(call.callSid)[0]?.ended);
    expect(runner.engine.sessionsFor(call.callSid)).toHaveLength(1);
    expect(runner.engine.samplesFed(call.callSid)).toBe(10 * 160);
  });
});
