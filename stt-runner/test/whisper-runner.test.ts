/**
 * The runner process as deployed (`main.ts`), driven over the relay socket as the edge drives it:
 * - no Google credentials: `auto` (the default) picks the whisper worker; finals with the right
 *   words commit the edge's audio, and /stats and /metrics show the worker;
 * - `--engine google` (the loopback Speech service) with the worker beside it: Google's final
 *   gets whisper's text (final pass), Google fails mid-call and the call moves to whisper.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  RELAY_CREDENTIAL_HEADER,
  encodeAudioFrame,
  encodeControl,
  parseRunnerToEdge,
  signRelayCredential,
} from "@ozen/shared";
import type { TranscriptEvent } from "@ozen/shared";
import { startSpeechServer } from "../src/testing/google-grpc.js";
import {
  callOf,
  callStart,
  loadCallAudio,
  repo,
  sleep,
  testWhisperConfig,
  expectGoogleThenWhisper,
  whisperSkipReason,
  words,
} from "./whisper-helpers.js";

const skip = whisperSkipReason();

type Final = Extract<TranscriptEvent, { type: "final" }>;

/** The relay's secret and the stats' token the runner is started with. */
const RELAY_SECRET = "whisper-runner-relay-secret";
const METRICS_TOKEN = "whisper-runner-metrics-token";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Starts `main.ts`; resolves with its port and its stderr so far (a getter). */
async function startRunner(args: string[], extraEnv: Record<string, string>) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WHISPER_PYTHON: testWhisperConfig().python,
    WHISPER_MODEL: "tiny.en",
    WHISPER_LANGUAGE: "en",
    GOOGLE_APPLICATION_CREDENTIALS: "",
    CLOUDSDK_CONFIG: path.join(repo, "no-such-gcloud-dir"),
    METADATA_SERVER_DETECTION: "none",
    OZEN_LOG_LEVEL: "info",
    RELAY_SECRET,
    RUNNER_METRICS_TOKEN: METRICS_TOKEN,
    ...extraEnv,
  };
  // the runner's own choice of engine and credentials, whatever this shell has set
  env["OZEN_ENGINE"] = extraEnv["OZEN_ENGINE"] ?? "";
  env["K_SERVICE"] = "";
  env["GCE_METADATA_HOST"] = "";
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), ...args], {
    cwd: repo,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  cleanups.push(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr}`)));
  });
  return { port, stderr: () => stderr };
}

/** One call over the relay at `speed` times real time; resolves when call.ended came back. */
async function relayCall(port: number, callSid: string, pcm: Int16Array, speed: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, {
    headers: { [RELAY_CREDENTIAL_HEADER]: await signRelayCredential(RELAY_SECRET, callSid, Date.now()) },
  });
  await new Promise((r, j) => ws.once("open", r).once("error", j));
  const events: TranscriptEvent[] = [];
  let committedSeq = -1;
  ws.on("message", (data: Buffer, binary: boolean) => {
    if (binary) return;
    const r = parseRunnerToEdge(data.toString());
    if (!r.ok) return;
    if (r.message.type === "event") events.push(r.message.event as unknown as TranscriptEvent);
    if (r.message.type === "ack") committedSeq = r.message.committedSeq ?? committedSeq;
  });
  const start = callStart(callSid);
  ws.send(encodeControl(start));
  let seq = 0;
  for (let i = 0; i < pcm.length; i += 800, seq++) {
    const block = pcm.subarray(i, i + 800);
    ws.send(encodeAudioFrame({ callId: callSid, seq, startSample: i, sampleRateHz: 8000, pcm: block }));
    await sleep(100 / speed);
  }
  // the last final before the stop, so the test can see what the audio committed
  for (let i = 0; i < 100 && !events.some((e) => e.type === "final"); i++) await sleep(100);
  await sleep(300);
  const committedBeforeStop = committedSeq;
  ws.send(encodeControl({ type: "stop", reason: "caller_hung_up", lastSeq: seq - 1 }));
  for (let i = 0; i < 300 && !events.some((e) => e.type === "call.ended"); i++) await sleep(100);
  ws.close();
  return {
    events,
    finals: events.filter((e): e is Final => e.type === "final"),
    committedBeforeStop,
  };
}

const bearer = { Authorization: `Bearer ${METRICS_TOKEN}` };

async function stats(port: number) {
  return (await (await fetch(`http://127.0.0.1:${port}/stats`, { headers: bearer })).json()) as {
    engine: Record<string, number | string>;
  };
}

describe.skipIf(skip !== undefined)("the runner process with the whisper worker", () => {
  it("with no Google credentials (engine auto) transcribes with whisper and shows the worker in /stats", async () => {
    const runner = await startRunner(["--port", "0"], {});
    expect(runner.stderr()).toMatch(/no Google credentials: transcribing with the whisper worker/);
    const r = await relayCall(runner.port, "CArunner", callOf(loadCallAudio("password"), 1500), 2);
    // the engine's language (WHISPER_LANGUAGE=en), not a Hebrew default
    expect(r.events[0]).toMatchObject({ type: "call.started", engine: "whisper", language: "en" });
    // the GO check's punctuation_off reads the profile from call.started
    expect(r.events[0]).toMatchObject({ profile: { name: "fast", punctuation: false } });
    expect(r.finals).toHaveLength(1);
    expect(r.finals[0]).toMatchObject({ engine: "whisper" });
    expect(words(r.finals[0]!.text)).toEqual(expect.arrayContaining(["password", "followed", "pound", "key"]));
    // the final commits the audio it covers, so the edge may forget it
    expect(r.committedBeforeStop).toBeGreaterThanOrEqual(Math.floor(r.finals[0]!.audioEndMs / 100) - 1);
    expect(r.events.at(-1)).toMatchObject({ type: "call.ended" });
    const engineStats = (await stats(runner.port)).engine;
    expect(engineStats, JSON.stringify(engineStats)).toMatchObject({
      name: "whisper",
      workerUp: 1,
      spawns: 1,
      crashes: 0,
      sessionsOpened: 1,
    });
    const metrics = await (await fetch(`http://127.0.0.1:${runner.port}/metrics`, { headers: bearer })).text();
    expect(metrics).toMatch(/^ozen_runner_engine_worker_up 1$/m);
  }, 120_000);

  it("with --engine google: a final-passed Google final, then Google fails and the call moves to whisper", async () => {
    const speech = await startSpeechServer();
    cleanups.push(() => speech.close());
    const first = callOf(loadCallAudio("password"), 1500);
    const second = callOf(loadCallAudio("directory"), 1500);
    const firstBlocks = Math.ceil(first.length / 800);
    speech.behaviour.finalOnHalfClose = false;
    speech.behaviour.scriptedFinals = [{ afterRequests: firstBlocks, text: "google heard the first" }];
    speech.behaviour.failOnceAfterRequests = firstBlocks + 15;
    const runner = await startRunner(["--port", "0", "--engine", "google"], {
      GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`,
      GOOGLE_INSECURE: "true",
      GOOGLE_LANGUAGE: "en-US",
      GOOGLE_RETRY_BUDGET: "0",
      OZEN_FALLBACK: "whisper",
      OZEN_FINAL_PASS_TIMEOUT_MS: "10000",
    });
    const r = await relayCall(runner.port, "CAgoogle", callOf(first, second), 2);
    expectGoogleThenWhisper(r.events);
    expect(r.finals[0]).toMatchObject({ text: "Google heard the first.", alternatives: [{ engine: "whisper" }] });
    expect(words(r.finals[0]!.alternatives![0]!.text)).toEqual(expect.arrayContaining(["password", "pound", "key"]));
    expect(r.events.find((e) => e.type === "engine.switched")).toMatchObject({
      from: "google-v1",
      to: "whisper",
      resumeFromMs: (firstBlocks * 800) / 8,
    });
    const own = r.finals.slice(1);
    expect(own.flatMap((f) => words(f.text))).toEqual(expect.arrayContaining(["person", "looking", "press", "star"]));
    for (const f of own) expect(f.alternatives).toBeUndefined(); // not decoded a second time
    expect((await stats(runner.port)).engine).toMatchObject({
      name: "google-v1",
      callsOnPrimary: 1,
      switchesFailed: 1,
      breakerOpen: 0,
      fallbackWorkerUp: 1,
      finalPassRequested: 1,
      finalPassConfirmed: 1,
    });
  }, 180_000);
});
