/**
 * The runner process as deployed (`main.ts`), with no Google credentials: `auto` (the default)
 * picks the whisper worker; a call over the relay socket gets call.started (whisper) and finals
 * with the right words, the edge's audio is committed by them, and /stats shows the worker.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { encodeAudioFrame, encodeControl, parseRunnerToEdge } from "@ozen/shared";
import type { RunnerToEdge, TranscriptEvent } from "@ozen/shared";
import {
  callOf,
  callStart,
  loadCallAudio,
  repo,
  sleep,
  testWhisperConfig,
  whisperSkipReason,
  words,
} from "./whisper-helpers.js";

const skip = whisperSkipReason();

describe.skipIf(skip !== undefined)("the runner with no Google credentials (engine auto)", () => {
  let child: ReturnType<typeof spawn>;
  let port = 0;
  let stderr = "";

  beforeAll(async () => {
    const w = testWhisperConfig();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      WHISPER_PYTHON: w.python,
      WHISPER_MODEL: "tiny.en",
      WHISPER_LANGUAGE: "en",
      GOOGLE_APPLICATION_CREDENTIALS: "",
      CLOUDSDK_CONFIG: path.join(repo, "no-such-gcloud-dir"),
      OZEN_LOG_LEVEL: "info",
    };
    delete env["OZEN_ENGINE"];
    delete env["K_SERVICE"];
    delete env["GCE_METADATA_HOST"];
    child = spawn(process.execPath, ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), "--port", "0"], {
      cwd: repo,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr}`)));
    });
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });

  it("transcribes a call over the relay with whisper and reports the worker in /stats", async () => {
    expect(stderr).toMatch(/no Google credentials: transcribing with the whisper worker/);
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    await new Promise((r, j) => ws.once("open", r).once("error", j));
    const events: TranscriptEvent[] = [];
    let committedSeq = -1;
    ws.on("message", (data: Buffer, binary: boolean) => {
      if (binary) return;
      const r = parseRunnerToEdge(data.toString());
      if (!r.ok) return;
      const m: RunnerToEdge = r.message;
      if (m.type === "event") events.push(m.event as unknown as TranscriptEvent);
      if (m.type === "ack") committedSeq = m.committedSeq ?? committedSeq;
    });
    const start = callStart("CArunner");
    ws.send(encodeControl(start));
    const pcm = callOf(loadCallAudio("agent-pass.wav"), 1500);
    let seq = 0;
    for (let i = 0; i < pcm.length; i += 800, seq++) {
      ws.send(
        encodeAudioFrame({
          callId: start.callSid,
          seq,
          startSample: i,
          sampleRateHz: 8000,
          pcm: pcm.subarray(i, i + 800),
        }),
      );
      await sleep(50);
    }
    for (let i = 0; i < 200 && !events.some((e) => e.type === "final"); i++) await sleep(100);
    expect(events[0]).toMatchObject({ type: "call.started", engine: "whisper" });
    const finals = events.filter((e): e is Extract<TranscriptEvent, { type: "final" }> => e.type === "final");
    expect(finals).toHaveLength(1);
    expect(finals[0]).toMatchObject({ engine: "whisper" });
    expect(words(finals[0]!.text)).toEqual(expect.arrayContaining(["password", "followed", "pound", "key"]));
    // the final commits the audio it covers, so the edge may forget it
    await sleep(200);
    expect(committedSeq).toBeGreaterThanOrEqual(Math.floor(finals[0]!.audioEndMs / 100) - 1);
    const stats = (await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as {
      engine: Record<string, number | string>;
    };
    expect(stats.engine).toMatchObject({ name: "whisper", workerUp: 1, spawns: 1, crashes: 0, sessionsOpened: 1 });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^ozen_runner_engine_worker_up 1$/m);
    ws.send(encodeControl({ type: "stop", reason: "caller_hung_up", lastSeq: seq - 1 }));
    for (let i = 0; i < 100 && !events.some((e) => e.type === "call.ended"); i++) await sleep(100);
    expect(events.at(-1)).toMatchObject({ type: "call.ended" });
    ws.close();
  }, 120_000);
});
