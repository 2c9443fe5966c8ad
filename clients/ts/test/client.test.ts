/**
 * @ozen/client against the real edge on workerd (the local stack, a runner with the speech
 * activity detector in front of the null engine) and calls placed by the simulator, which plays
 * Twilio's buffer (what the caller heard): events, acks with a small window, reconnect with
 * `since=`, play/clear/mark, barge-in, the edge's errors.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMulaw, wavBytes } from "@ozen/shared";
import { nullEngine, withSpeechActivity } from "@ozen/stt-runner";
import { startLocalStack } from "../../../tools/src/local-stack.js";
import type { LocalStack } from "../../../tools/src/local-stack.js";
import { newIdentity, placeCall } from "../../../tools/src/simulator.js";
import type { CallResult } from "../../../tools/src/simulator.js";
import { OzenClient, OzenError, readWav } from "../src/node.js";
import type { CallMessage, CallStream } from "../src/node.js";

const READ_ONLY = "read-only-token";
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    runner: { engine: withSpeechActivity(nullEngine), transcripts: true },
    vars: {
      GREETING: "agent",
      BARGE_IN: "speech",
      EVENTS_TOKEN: READ_ONLY,
      SUBSCRIBER_WINDOW: "4",
      PLAYBACK_QUEUE_MS: "3000",
    },
  });
});

afterAll(async () => {
  await stack?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tone(rateHz: number, ms: number, freqHz = 440, amplitude = 6000): Int16Array {
  return Int16Array.from({ length: (rateHz * ms) / 1000 }, (_, i) =>
    Math.round(amplitude * Math.sin((2 * Math.PI * freqHz * i) / rateHz)),
  );
}

function pcmBytes(pcm: Int16Array): Uint8Array {
  return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

const silence = (ms: number) => new Uint8Array(8 * ms).fill(0xff);

function speech(name: string): Uint8Array {
  const file = fileURLToPath(new URL(`../../../tools/speech/${name}.wav`, import.meta.url));
  return readWav(new Uint8Array(readFileSync(file))).audio;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** Where the caller heard anything, as [startMs, endMs) runs of 20 ms frames (gaps up to 60 ms join). */
function heardRuns(heard: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  for (let f = 0; f * 160 < heard.length; f++) {
    if (!heard.subarray(f * 160, (f + 1) * 160).some((b) => b !== 0xff && b !== 0x7f)) continue;
    const [start, end] = [f * 20, (f + 1) * 20];
    const last = runs[runs.length - 1];
    if (last && last[1] >= start - 60) last[1] = end;
    else runs.push([start, end]);
  }
  return runs;
}

/** A simulated call with `mulaw` from the caller; resolves with what it heard. */
function call(mulaw: Uint8Array): { callSid: string; done: Promise<CallResult> } {
  const identity = newIdentity();
  const done = placeCall({
    edgeUrl: stack.url,
    authToken: stack.authToken,
    audio: mulaw,
    identity,
    keepHeard: true,
  });
  return { callSid: identity.callSid, done };
}

/** Reads a stream's messages in the background, as an agent's loop would. */
class Collector {
  readonly messages: CallMessage[] = [];
  readonly reading: Promise<void>;
  constructor(readonly stream: CallStream) {
    this.reading = (async () => {
      for await (const m of stream) this.messages.push(m);
    })();
  }
  of<T extends CallMessage["type"]>(type: T): Extract<CallMessage, { type: T }>[] {
    return this.messages.filter((m) => m.type === type) as Extract<CallMessage, { type: T }>[];
  }
  async until(what: string, ready: () => unknown, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.messages)}`);
      await sleep(20);
    }
  }
}

async function streaming(callSid: string): Promise<{ stream: CallStream; events: Collector }> {
  const stream = new OzenClient({ baseUrl: stack.url, token: stack.apiToken }).call(callSid);
  await stream.open();
  const events = new Collector(stream);
  await events.until("call.started", () => events.of("call.started").length);
  return { stream, events };
}

describe("@ozen/client on Node (ws)", () => {
  it("plays a WAV file's bytes and the caller hears all of it", async () => {
    const c = call(silence(3500));
    const { stream, events } = await streaming(c.callSid);
    const playback = await stream.play(wavBytes(tone(24000, 1000), 24000), { id: "answer" });
    const outcome = await playback.wait(10_000);
    expect(outcome).toMatchObject({ type: "playback.finished", playId: "answer" });
    expect(events.of("playback.started").map((e) => e.playId)).toEqual(["answer"]);
    await stream.close();
    const runs = heardRuns((await c.done).heard!);
    expect(runs).toHaveLength(1);
    expect(Math.abs(runs[0]![1] - runs[0]![0] - 1000)).toBeLessThanOrEqual(40);
  });

  it("streams TTS chunks; clear stops them mid-utterance; a mark after is echoed", async () => {
    const c = call(silence(5000));
    const { stream, events } = await streaming(c.callSid);
    const format = { encoding: "pcm16", sampleRateHz: 16000 } as const;
    async function* tts() {
      for (let i = 0; i < 30; i++) {
        yield pcmBytes(tone(16000, 100));
        await sleep(50);
      }
    }
    const speaking = stream.play(tts(), { id: "long", format });
    await events.until("playback.started", () => events.of("playback.started").length);
    await sleep(500);
    await stream.clear();
    const playback = await speaking;
    expect(playback.cleared).toBe(true);
    expect(playback.chunksSent).toBeGreaterThan(0);
    expect(playback.chunksSent).toBeLessThan(30);
    expect(await playback.wait(5000)).toMatchObject({ type: "playback.cleared", reason: "clear" });
    const again = await stream.play(pcmBytes(tone(16000, 200)), { id: "short", format });
    const mark = await stream.mark("after-short");
    expect(await mark.wait(5000)).toMatchObject({ name: "after-short", cleared: false });
    expect(await again.wait(5000)).toMatchObject({ type: "playback.finished" });
    await stream.close();
    await c.done;
  });

  it("barge-in (BARGE_IN=speech): the caller's voice cuts the agent and play stops sending", async () => {
    const c = call(concat(silence(1500), speech("password"), silence(1500)));
    const { stream, events } = await streaming(c.callSid);
    async function* tts() {
      for (let i = 0; i < 60; i++) {
        yield encodeMulaw(tone(8000, 100));
        await sleep(50);
      }
    }
    const playback = await stream.play(tts(), { id: "talk", format: { encoding: "mulaw", sampleRateHz: 8000 } });
    expect(playback.cleared).toBe(true);
    expect(playback.chunksSent).toBeLessThan(60);
    expect(await playback.wait(5000)).toMatchObject({ type: "playback.cleared", reason: "barge_in" });
    await events.until("barge_in", () => events.of("barge_in").length);
    const bargeIn = events.of("barge_in")[0]!;
    expect(bargeIn).toMatchObject({ policy: "speech", playId: "talk" });
    expect(bargeIn.speechAudioMs).toBe(events.of("speech.started")[0]!.audioMs);
    await stream.close();
    const runs = heardRuns((await c.done).heard!);
    expect(runs).toHaveLength(1);
    expect(runs[0]![1]).toBeLessThan(1750 + 1000);
  });

  it("rejects with the edge's code: 401, 403, queue_full, not_controller", async () => {
    const c = call(silence(4000));
    const wrong = new OzenClient({ baseUrl: stack.url, token: "wrong" }).call(c.callSid);
    await expect(wrong.open()).rejects.toMatchObject({ code: "http_401" });
    const readOnly = new OzenClient({ baseUrl: stack.url, token: READ_ONLY }).call(c.callSid);
    await expect(readOnly.open()).rejects.toMatchObject({ code: "http_403" });
    const { stream } = await streaming(c.callSid);
    const flood = stream.play(new Uint8Array(64_000).fill(0x55), {
      id: "flood",
      format: { encoding: "mulaw", sampleRateHz: 8000 },
      maxAheadMs: 60_000,
    });
    const refused = await flood.then((p) => p.wait(5000)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OzenError);
    expect(refused).toMatchObject({ code: "queue_full", playId: "flood" });
    const reader = new OzenClient({ baseUrl: stack.url, token: stack.apiToken }).call(c.callSid, { control: false });
    await reader.open();
    await expect(reader.clear()).rejects.toMatchObject({ code: "not_controller" });
    await reader.close();
    await stream.close();
    await c.done;
  });

  it("acks keep a window of 4 flowing; a dropped socket reconnects with since= and every event comes once", async () => {
    const c = call(silence(6000));
    const { stream, events } = await streaming(c.callSid);
    const format = { encoding: "pcm16", sampleRateHz: 8000 } as const;
    for (let i = 0; i < 6; i++) {
      if (i === 3) {
        // the network drops the socket (no close handshake) mid-call
        (stream as unknown as { ws: { raw: { terminate(): void } } }).ws.raw.terminate();
        await sleep(50);
      }
      const p = await stream.play(pcmBytes(tone(8000, 60)), { id: `r${i}`, format });
      await p.wait(10_000);
    }
    expect(stream.connections).toBe(2);
    await events.until("6 finished", () => events.of("playback.finished").length === 6);
    const numbers = events.messages.flatMap((m) => ("n" in m && m.n !== undefined ? [m.n] : []));
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    const stats = (await (
      await fetch(`${stack.url}/calls/${c.callSid}/stats`, { headers: { Authorization: `Bearer ${stack.apiToken}` } })
    ).json()) as any;
    const now = stats.eventStream.subscribers.list[0];
    expect(now.closed).toBeNull();
    expect(now.acked).toBe(now.sent);
    await stream.close();
    await c.done;
  });
});

describe("@ozen/client on Cloudflare Workers (workerd)", () => {
  it("opens the stream by fetch upgrade, plays once the call streams, and verifies a webhook with WebCrypto", async () => {
    const { build } = await import("esbuild");
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL("./worker-agent.ts", import.meta.url))],
      bundle: true,
      format: "esm",
      platform: "neutral",
      mainFields: ["module", "main"],
      conditions: ["workerd", "worker", "browser"],
      write: false,
    });
    const { Miniflare } = await import("miniflare");
    const mf = new Miniflare({ modules: true, script: bundle.outputFiles[0]!.text, compatibilityDate: "2026-04-01" });
    try {
      const c = call(silence(3000));
      const res = await mf.dispatchFetch("http://worker/", {
        method: "POST",
        body: JSON.stringify({ baseUrl: stack.url, token: stack.apiToken, callSid: c.callSid }),
      });
      const out = (await res.json()) as { seen: string[]; webhookSeq: number; connections: number };
      expect(out.webhookSeq).toBe(1);
      expect(out.connections).toBe(1);
      expect(out.seen).toEqual(["control", "call.started", "playback.started", "playback.finished"]);
      const runs = heardRuns((await c.done).heard!);
      expect(runs).toHaveLength(1);
      expect(Math.abs(runs[0]![1] - runs[0]![0] - 300)).toBeLessThanOrEqual(40);
    } finally {
      await mf.dispose();
    }
  });
});
