/**
 * The whisper engine against the real worker process (tiny.en) on real 8 kHz telephony speech:
 * finals with the right words in call time, a worker killed mid-call (restarted, the call goes
 * on, nothing lost or doubled), and a model that does not exist (a clear error at start).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineFinal, EngineInterim } from "../src/engines/engine.js";
import { WhisperEngine } from "../src/engines/whisper/engine.js";
import { WhisperWorkerError } from "../src/engines/whisper/worker.js";
import {
  callOf,
  callStart,
  loadCallAudio,
  play,
  repo,
  sleep,
  testWhisperConfig,
  whisperSkipReason,
  words,
} from "./whisper-helpers.js";

const skip = whisperSkipReason();
/** The words of the first prompt of the test call (`password`: "Please enter your password ..."). */
const PASSWORD_PROMPT = ["please", "enter", "your", "password", "followed", "by", "the", "pound", "key"];
if (skip) console.warn(`whisper engine tests skipped: ${skip}`);

function collect() {
  const finals: EngineFinal[] = [];
  const interims: EngineInterim[] = [];
  const failures: string[] = [];
  return {
    finals,
    interims,
    failures,
    listener: {
      interim: (r: EngineInterim) => interims.push(r),
      final: (r: EngineFinal) => finals.push(r),
      failed: (f: { code: string }) => failures.push(f.code),
    },
    text: () => words(finals.map((f) => f.text).join(" ")),
  };
}

describe.skipIf(skip !== undefined)("whisper engine (real worker, tiny.en)", () => {
  let engine: WhisperEngine;
  beforeAll(async () => {
    ({ engine } = await WhisperEngine.start(testWhisperConfig()));
  });
  afterAll(async () => {
    await engine?.close();
  });

  it("as the only engine, gives finals with the right words, in call time", async () => {
    const c = collect();
    const first = loadCallAudio("password"); // "Please enter your password followed by the pound key."
    const second = loadCallAudio("directory"); // "... person ... looking ... press ... star ... now"
    const call = callOf(first, 1200, second, 1000);
    const session = engine.open(callStart("CAwhisperonly"), c.listener);
    await play(session, call, { speed: 2 });
    await session.end();
    expect(c.failures).toEqual([]);
    // the first recording is one final; the second one or more (whisper ends an utterance at a pause)
    expect(c.finals.length).toBeGreaterThanOrEqual(2);
    expect(words(c.finals[0]!.text)).toEqual(PASSWORD_PROMPT);
    const rest = c.finals.slice(1);
    expect(rest.flatMap((f) => words(f.text))).toEqual(
      expect.arrayContaining(["person", "looking", "press", "now", "star"]),
    );
    // call audio times: the second utterance starts after the first one and its silence
    const firstMs = (first.length / 8000) * 1000;
    expect(c.finals[0]!.audioStartMs).toBeLessThan(300);
    expect(c.finals[0]!.audioEndMs).toBeGreaterThan(firstMs - 300);
    expect(rest[0]!.audioStartMs).toBeGreaterThan(firstMs + 600);
    for (let i = 1; i < c.finals.length; i++) {
      expect(c.finals[i]!.audioStartMs).toBeGreaterThanOrEqual(c.finals[i - 1]!.audioEndMs);
    }
    const last = c.finals[c.finals.length - 1]!;
    expect(last.audioEndMs).toBeLessThanOrEqual((call.length / 8000) * 1000);
    // partials carry the LocalAgreement-2 prefix as a stable segment
    expect(c.interims.some((i) => i.segments[0]?.stability === 1)).toBe(true);
    expect(session.committedSample).toBe(Math.round(last.audioEndMs * 8));
  }, 120_000);

  it("restarts a worker killed mid-call; the call goes on with nothing lost or doubled", async () => {
    const c = collect();
    const first = loadCallAudio("password");
    const second = loadCallAudio("directory");
    const call = callOf(first, 1200, second, 1500);
    const session = engine.open(callStart("CAkilled"), c.listener);
    const restartsBefore = engine.worker.counters.restarts;
    let killedPid: number | undefined;
    let finalsAtKill = -1;
    const secondStartMs = ((first.length + 9600) / 8000) * 1000;
    await play(session, call, {
      speed: 1.5,
      at: {
        // halfway through the second utterance, after the first one's final
        [Math.round(secondStartMs + 2500)]: async () => {
          for (let i = 0; i < 100 && c.finals.length === 0; i++) await sleep(100);
          finalsAtKill = c.finals.length;
          killedPid = engine.worker.pid;
          process.kill(killedPid!, "SIGKILL");
        },
      },
    });
    await session.end();
    expect(finalsAtKill).toBeGreaterThanOrEqual(1); // killed after the first utterance's final
    expect(engine.worker.pid).not.toBe(killedPid);
    expect(engine.worker.counters.restarts).toBe(restartsBefore + 1);
    expect(session.stats.reopens).toBe(1);
    expect(session.stats.replayedMs).toBeGreaterThan(2000);
    expect(c.failures).toEqual([]);
    // the first utterance once, the second (heard again from the last final: one final or more,
    // whisper ends an utterance at a pause) complete, no final over audio another one covered
    expect(c.finals.length).toBeGreaterThanOrEqual(2);
    expect(c.text().filter((w) => w === "password")).toHaveLength(1);
    expect(c.finals.slice(1).flatMap((f) => words(f.text))).toEqual(
      expect.arrayContaining(["person", "looking", "press", "now", "star"]),
    );
    expect(c.text().filter((w) => w === "person")).toHaveLength(1);
    for (let i = 1; i < c.finals.length; i++) {
      expect(c.finals[i]!.audioStartMs).toBeGreaterThanOrEqual(c.finals[i - 1]!.audioEndMs);
    }
  }, 180_000);

  it("kills and restarts a worker that stops answering (SIGSTOP); the call goes on", async () => {
    const { engine: watched } = await WhisperEngine.start(testWhisperConfig({ WHISPER_WATCHDOG_MS: "2000" }));
    try {
      const c = collect();
      const first = loadCallAudio("password");
      const second = loadCallAudio("directory");
      const session = watched.open(callStart("CAhung"), c.listener);
      let stoppedPid: number | undefined;
      const secondStartMs = ((first.length + 9600) / 8000) * 1000;
      await play(session, callOf(first, 1200, second, 1500), {
        speed: 1.5,
        at: {
          [Math.round(secondStartMs + 1000)]: () => {
            stoppedPid = watched.worker.pid;
            process.kill(stoppedPid!, "SIGSTOP");
          },
        },
      });
      await session.end();
      expect(watched.worker.counters).toMatchObject({ hung: 1, restarts: 1 });
      expect(watched.worker.pid).not.toBe(stoppedPid);
      expect(c.failures).toEqual([]);
      expect(c.text().filter((w) => w === "password")).toHaveLength(1);
      expect(c.text()).toEqual(expect.arrayContaining(["person", "looking", "press", "star"]));
      expect(watched.stats()).toMatchObject({ hung: 1, workerUp: 1, workerSessions: expect.any(Number) });
    } finally {
      await watched.close();
    }
  }, 180_000);

  it("keeps the last final of a call that hangs up while its worker is stopped (the watchdog restarts it)", async () => {
    // end() waits 3 s; the stopped worker is killed after 2-2.5 s and its replacement loads the
    // model: the wait ran out while no worker was up, and the call's only final was lost
    const { engine: watched } = await WhisperEngine.start(
      testWhisperConfig({ WHISPER_WATCHDOG_MS: "2000", WHISPER_END_TIMEOUT_MS: "3000" }),
    );
    try {
      const c = collect();
      const prompt = loadCallAudio("password"); // "Please enter your password followed by the pound key."
      const session = watched.open(callStart("CAhungAtHangUp"), c.listener);
      let stoppedPid: number | undefined;
      await play(session, callOf(prompt, 500), {
        speed: 1,
        at: {
          // before the end of speech: no final can be out yet; the rest waits in the pipe
          [Math.round((prompt.length / 8000) * 800)]: () => {
            stoppedPid = watched.worker.pid;
            process.kill(stoppedPid!, "SIGSTOP");
          },
        },
      });
      expect(c.finals).toEqual([]);
      await session.end();
      expect(c.failures).toEqual([]);
      expect(c.finals.length).toBe(1);
      expect(watched.worker.counters).toMatchObject({ hung: 1, restarts: 1 });
      expect(watched.worker.pid).not.toBe(stoppedPid);
      expect(words(c.finals[0]!.text)).toEqual(PASSWORD_PROMPT);
    } finally {
      await watched.close();
    }
  }, 120_000);

  it("gives a call up (failed, whisper_worker_lost) when the worker cannot be brought back", async () => {
    // the model through a link that disappears: the restart finds no model
    const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-model-"));
    const link = path.join(dir, "model");
    symlinkSync(engine.worker.ready!.path!, link);
    const { engine: doomed } = await WhisperEngine.start(
      testWhisperConfig({ WHISPER_MODEL: link, WHISPER_MAX_RESTARTS: "1" }),
    );
    try {
      const failures: { code: string; message: string; resumeFromMs: number }[] = [];
      const session = doomed.open(callStart("CAlost"), {
        interim() {},
        final() {},
        failed: (f) => failures.push(f),
      });
      session.feed(loadCallAudio("password"), 0);
      rmSync(dir, { recursive: true });
      process.kill(doomed.worker.pid!, "SIGKILL");
      for (let i = 0; i < 300 && failures.length === 0; i++) await sleep(100);
      expect(failures).toEqual([
        {
          code: "whisper_worker_lost",
          message: expect.stringMatching(/^the whisper worker cannot start: .*model/),
          resumeFromMs: 0,
        },
      ]);
      expect(doomed.worker.gone).toBe(true);
      // a call opened now fails at once, the same way
      const later: string[] = [];
      doomed.open(callStart("CAafter"), { interim() {}, final() {}, failed: (f) => later.push(f.code) });
      await sleep(10);
      expect(later).toEqual(["whisper_worker_lost"]);
    } finally {
      await doomed.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("refuses to start with a model path that does not exist, saying so", async () => {
    const missing = path.join(repo, "no-such-model-dir");
    const err = await WhisperEngine.start(testWhisperConfig({ WHISPER_MODEL: missing })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WhisperWorkerError);
    expect((err as WhisperWorkerError).code).toBe("model_not_found");
    expect((err as Error).message).toMatch(/^the whisper worker cannot start: .*no-such-model-dir/);
  }, 60_000);

  it("stops the runner at start with that message (--engine whisper)", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), "--port", "0", "--engine", "whisper"],
      {
        cwd: repo,
        env: {
          ...process.env,
          WHISPER_MODEL: "/no/such/model",
          WHISPER_LANGUAGE: "en",
          RELAY_SECRET: "whisper-engine-relay-secret",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    let stdout = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code).toBe(2);
    expect(stdout).not.toMatch(/listening/);
    // Cloud Logging's shape (log.ts): the level as severity, the text as message
    const last = JSON.parse(stderr.trim().split("\n").pop()!) as { severity: string; message: string };
    expect(last.severity).toBe("ERROR");
    expect(last.message).toMatch(/^whisper engine \(engine\): the whisper worker cannot start: .*\/no\/such\/model/);
  }, 60_000);
});
