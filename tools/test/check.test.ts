/**
 * `ozen check` against a real local edge (workerd through Miniflare) and a real runner
 * (RelayServer + the transcript policy, composed as stt-runner/src/main.ts does), with the null
 * engine and with a level-following stand-in engine that says partials. The rules themselves
 * are tested with plain values.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nullEngine } from "@ozen/stt-runner";
import type { Engine } from "@ozen/stt-runner";
import { loadAudio8k } from "../src/audio.js";
import { checkCredentials, isLocalUrl, readDevVars, runCheck } from "../src/check.js";
import { evaluate } from "../src/check/evaluate.js";
import type { CallMeasurements } from "../src/check/evaluate.js";
import { CHECK_NAMES, DEFAULT_CHECKS, parseLimitOverride } from "../src/check/limits.js";
import type { CheckName, Limit } from "../src/check/limits.js";
import { speechOnsetFrame } from "../src/check/onset.js";
import { startLocalStack } from "../src/local-stack.js";
import { callSpeech } from "../src/speech-data.js";
import type { LocalStack } from "../src/local-stack.js";
import { levelEngine } from "./speech-engine.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const AUTH = "check-auth-token";
const API = "check-api-token";
const PUBLIC = "http://127.0.0.1:1";
const PARTIAL_CHECKS = ["first_partial", "partial_cadence"];

/**
 * The checks with a limit in ms read a real call's wall clock: buffering is the age of a block's
 * oldest audio when it leaves the edge, so a stall of the process sending the call or of workerd
 * (one block of 708 ms on this 2-core machine under other work) fails its limit however the edge
 * behaves; measured, the edge's block ages follow the sender's own spacing of frames. Whether a
 * machine meets the limits is what `ozen check` against a running stack measures, not what these
 * tests are about: here those limits take any time, and the tests see what they test, every check
 * measured, its verdict, the exit status and the report.
 */
const TIMED = CHECK_NAMES.filter((n) => DEFAULT_CHECKS[n].unit === "ms");
const ANY_TIME: Partial<Record<CheckName, Limit>> = Object.fromEntries(
  TIMED.map((n) => [n, { kind: "range", min: 0, max: 1e9 }]),
);
const ANY_TIME_ARGS = TIMED.flatMap((n) => ["--limit", `${n}=0..1000000000`]);

// one runner whose engine each test chooses (the runner reads it per call)
let engine: Engine = nullEngine;
const switchable: Engine = {
  get name() {
    return engine.name;
  },
  get profile() {
    return engine.profile;
  },
  open: (call, listener) => engine.open(call, listener),
};

let stack: LocalStack;
// the check's own default: Hebrew from ../shared/data, else the project's English prompt
const speech = callSpeech();
const audio = loadAudio8k(speech.path);

beforeAll(async () => {
  stack = await startLocalStack({
    runner: { engine: switchable, transcripts: true },
    authToken: AUTH,
    apiToken: API,
    publicUrl: PUBLIC,
  });
});

afterAll(async () => {
  await stack?.close();
});

/** Runs `ozen check` as a process; resolves with its exit status, the --json report and what it printed. */
function cli(
  args: string[],
  env: NodeJS.ProcessEnv = { ...process.env, TWILIO_AUTH_TOKEN: AUTH, OZEN_API_TOKEN: API },
): Promise<{ code: number | null; report: any; stdout: string; stderr: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-check-"));
  const json = path.join(dir, "report.json");
  const child = spawn(
    process.execPath,
    [path.join(repo, "tools/bin/ozen.js"), "check", stack.url, "--public-url", PUBLIC, "--json", json, ...args],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    child.on("close", (code) => {
      let report: unknown;
      try {
        report = JSON.parse(readFileSync(json, "utf8"));
      } catch {
        report = undefined;
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, report, stdout, stderr });
    });
  });
}

describe("ozen check against a local edge and runner", () => {
  it("with the null engine: the partial checks fail saying it transcribes nothing; every other check passes", async () => {
    engine = nullEngine;
    // events by polling here; the CLI tests below take the WebSocket when the edge offers one
    const run = await runCheck({
      edgeUrl: stack.url,
      publicUrl: PUBLIC,
      authToken: AUTH,
      apiToken: API,
      audio,
      events: "poll",
      limits: ANY_TIME,
    });
    const byName = Object.fromEntries(run.checks.map((c) => [c.name, c]));
    expect(run.checks.map((c) => c.name)).toEqual([...CHECK_NAMES]);
    for (const name of PARTIAL_CHECKS) {
      expect(byName[name]).toMatchObject({ value: null, pass: false });
      expect(byName[name]!.note).toContain('the runner\'s engine is "null", which transcribes nothing');
    }
    for (const c of run.checks.filter((c) => !PARTIAL_CHECKS.includes(c.name))) {
      expect({ name: c.name, pass: c.pass, note: c.note }).toEqual({ name: c.name, pass: true, note: c.note });
    }
    // summed whole-ms ticks over a short call: measured, or said why not
    const decode = byName["table_decode"]!;
    if (decode.value === null) expect(decode.note).toMatch(/^not measurable: the edge's clock did not move/);
    else expect(typeof decode.value).toBe("number");
    expect(byName["punctuation_off"]!.value).toBe(false);
    expect(byName["feed_cadence"]!.value).toBeGreaterThanOrEqual(90);
    expect(byName["feed_cadence"]!.value).toBeLessThanOrEqual(110);
    expect(run.measurements.eventsVia).toMatch(/^polling/);
    expect(run.measurements.started?.engine).toBe("null");
    expect(run.pass).toBe(false);
  });

  it("exits 0 with every check passing when the engine says partials, and writes the --json report", async () => {
    engine = levelEngine;
    const { code, report, stdout } = await cli(ANY_TIME_ARGS);
    expect(stdout).toContain("GO: 8 of 8 checks pass");
    expect(code).toBe(0);
    expect(report.pass).toBe(true);
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual([...CHECK_NAMES]);
    for (const c of report.checks) {
      expect(Object.keys(c)).toEqual(expect.arrayContaining(["name", "value", "limit", "unit", "pass"]));
      expect(c.pass).toBe(true);
    }
  }, 60_000);

  it("exits 1 when one check fails (a limit tightened by --limit), naming it in the report", async () => {
    engine = levelEngine;
    const { code, report } = await cli([...ANY_TIME_ARGS, "--limit", "greeting_latency=0"]);
    expect(code).toBe(1);
    expect(report.pass).toBe(false);
    const failed = report.checks.filter((c: { pass: boolean }) => !c.pass);
    expect(failed).toEqual([expect.objectContaining({ name: "greeting_latency", limit: 0, unit: "ms", pass: false })]);
  }, 60_000);

  it("takes the tokens from .dev.vars for a local URL when neither the command line nor the environment has them", async () => {
    engine = levelEngine;
    const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-devvars-"));
    const devVars = path.join(dir, ".dev.vars");
    writeFileSync(
      devVars,
      `# as make dev writes it\nTWILIO_AUTH_TOKEN=${AUTH}\nAPI_TOKEN="${API}"\nCALL_TOKEN_SECRET=x\n`,
    );
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !["TWILIO_AUTH_TOKEN", "OZEN_API_TOKEN", "API_TOKEN"].includes(k)),
    );
    try {
      const { code, report, stderr } = await cli(["--dev-vars", devVars], env);
      expect(stderr).toContain(`API_TOKEN, TWILIO_AUTH_TOKEN from ${devVars}`);
      // a call was placed and checked (2 would mean none was)
      expect(code, stderr).not.toBe(2);
      expect(report.checks.map((c: { name: string }) => c.name)).toEqual([...CHECK_NAMES]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

function measured(over: Partial<CallMeasurements> = {}): CallMeasurements {
  const summary = (p50: number, p99: number) => ({ count: 30, p50, p99, max: p99, mean: p50 });
  return {
    answerToGreetingMs: 120,
    greetingMs: 100,
    onsetSentAtMs: 1000,
    partials: [
      { utteranceId: "CA1:u1", wallMs: 5000, receivedAtMs: 1800 },
      { utteranceId: "CA1:u1", wallMs: 5180, receivedAtMs: 1980 },
      { utteranceId: "CA1:u1", wallMs: 5380, receivedAtMs: 2180 },
    ],
    started: {
      v: 1,
      type: "call.started",
      callSid: "CA1",
      wallMs: 0,
      engine: "google-v1",
      profile: { name: "fast", punctuation: false },
    },
    eventsVia: "websocket",
    stats: {
      state: "ended",
      framesIn: 200,
      handlerMsTotal: 20,
      handlerMsMax: 1,
      decodeMsTotal: 2,
      blockMs: 100,
      blockIntervalMs: summary(100, 104),
      blockHeldMs: summary(100, 101),
    },
    ...over,
  };
}

describe("where ozen check finds its tokens", () => {
  const devVars = { API_TOKEN: "dev-api", TWILIO_AUTH_TOKEN: "dev-auth", PUBLIC_BASE_URL: "http://127.0.0.1:8787" };
  const none = { token: undefined, authToken: undefined, publicUrl: undefined };

  it("knows a local URL: 127.0.0.1 (any of 127/8), localhost, [::1]; nothing else", () => {
    for (const url of ["http://127.0.0.1:8787", "http://127.8.9.10", "http://localhost:8787/", "http://[::1]:8787"]) {
      expect(isLocalUrl(url), url).toBe(true);
    }
    for (const url of ["https://edge.example.com", "http://10.0.0.1:8787", "http://127.0.0.1.example.com", "nope"]) {
      expect(isLocalUrl(url), url).toBe(false);
    }
  });

  it("for a local URL, takes from .dev.vars what neither the command line nor the environment gives", () => {
    expect(checkCredentials({ edgeUrl: "http://127.0.0.1:8787", flags: none, env: {}, devVars })).toEqual({
      apiToken: "dev-api",
      authToken: "dev-auth",
      publicUrl: "http://127.0.0.1:8787",
      fromDevVars: ["API_TOKEN", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"],
    });
  });

  it("prefers the command line, then the environment, to .dev.vars, one setting at a time", () => {
    const env = { OZEN_API_TOKEN: "env-api", TWILIO_AUTH_TOKEN: "env-auth" };
    expect(
      checkCredentials({ edgeUrl: "http://localhost:8787", flags: { ...none, authToken: "flag-auth" }, env, devVars }),
    ).toEqual({
      apiToken: "env-api",
      authToken: "flag-auth",
      publicUrl: "http://127.0.0.1:8787",
      fromDevVars: ["PUBLIC_BASE_URL"],
    });
    expect(
      checkCredentials({ edgeUrl: "http://localhost:8787", flags: none, env: { API_TOKEN: "env-api2" }, devVars }),
    ).toMatchObject({ apiToken: "env-api2", authToken: "dev-auth" });
  });

  it("never reads a remote edge's tokens from .dev.vars", () => {
    expect(checkCredentials({ edgeUrl: "https://edge.example.com", flags: none, env: {}, devVars })).toEqual({
      fromDevVars: [],
    });
  });

  it("reads .dev.vars as wrangler does (dotenv: comments, quotes), and says when there is none", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-devvars-"));
    try {
      const file = path.join(dir, ".dev.vars");
      expect(readDevVars(file)).toBeUndefined();
      writeFileSync(file, "# local secrets\nTWILIO_AUTH_TOKEN=dev-auth-token\nAPI_TOKEN='quoted token'\n");
      expect(readDevVars(file)).toEqual({ TWILIO_AUTH_TOKEN: "dev-auth-token", API_TOKEN: "quoted token" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the checks' rules", () => {
  it("pass a call that meets every limit", () => {
    const r = evaluate(measured());
    expect(r.checks.map((c) => [c.name, c.value, c.pass])).toEqual([
      ["greeting_latency", 120, true],
      ["first_partial", 800, true],
      ["partial_cadence", 180, true],
      ["feed_cadence", 100, true],
      ["edge_handler_time", 0.1, true],
      ["buffering", 101, true],
      ["table_decode", 0.01, true],
      ["punctuation_off", false, true],
    ]);
    expect(r.pass).toBe(true);
  });

  it("time the first partial from the speech onset, ignoring anything that came before it", () => {
    const early = { utteranceId: "CA1:u1", wallMs: 4000, receivedAtMs: 900 };
    const r = evaluate(measured({ partials: [early, ...measured().partials] }));
    expect(r.checks.find((c) => c.name === "first_partial")!.value).toBe(800);
  });

  it("measure cadence only between partials of one utterance", () => {
    const partials = [
      { utteranceId: "CA1:u1", wallMs: 0, receivedAtMs: 1100 },
      { utteranceId: "CA1:u2", wallMs: 900, receivedAtMs: 2000 },
    ];
    const c = evaluate(measured({ partials })).checks.find((x) => x.name === "partial_cadence")!;
    expect(c).toMatchObject({ value: null, pass: false });
    expect(c.note).toBe("2 partials, no two in one utterance: no cadence to measure");
  });

  it("fail punctuation on, a per-frame feed, and oversized buffering", () => {
    const r = evaluate(
      measured({
        started: { ...measured().started!, profile: { name: "accurate", punctuation: true } },
        stats: {
          ...measured().stats,
          blockIntervalMs: { count: 200, p50: 20, p99: 21, max: 21, mean: 20 },
          blockHeldMs: { count: 3, p50: 300, p99: 300, max: 300, mean: 300 },
        },
      }),
    );
    expect(r.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([
      "feed_cadence",
      "buffering",
      "punctuation_off",
    ]);
  });

  it("fail a mu-law decode slower than 0.25 ms a frame", () => {
    const r = evaluate(measured({ stats: { ...measured().stats, framesIn: 200, decodeMsTotal: 60 } }));
    const c = r.checks.find((x) => x.name === "table_decode")!;
    expect(c).toMatchObject({ value: 0.3, limit: 0.25, unit: "ms", pass: false });
    expect(c.note).toBe("200 frames, 60 ms in all (whole-ms clock samples): base64 + table decode into the block");
  });

  it("pass the decode as not measurable, saying so, when the edge's clock never moved while it decoded", () => {
    const r = evaluate(measured({ stats: { ...measured().stats, framesIn: 200, decodeMsTotal: 0 } }));
    const c = r.checks.find((x) => x.name === "table_decode")!;
    expect(c).toMatchObject({ value: null, pass: true });
    expect(c.note).toBe(
      "not measurable: the edge's clock did not move while it decoded 200 frames (whole ms locally, still inside a handler on Cloudflare); ozen bench ingest measures the edge's CPU per frame",
    );
    expect(r.pass).toBe(true);
  });

  it("fail, saying why, what an older edge or runner does not report", () => {
    const r = evaluate(
      measured({
        stats: { state: "ended", framesIn: 10, handlerMsTotal: 1 },
        started: { ...measured().started!, profile: undefined },
      }),
    );
    const notes = Object.fromEntries(r.checks.filter((c) => !c.pass).map((c) => [c.name, c.note]));
    expect(notes).toEqual({
      feed_cadence: "the edge does not report blockIntervalMs (an older edge?)",
      buffering: "the edge does not report blockHeldMs (an older edge?)",
      table_decode: "the edge does not report decodeMsTotal (an older edge?)",
      punctuation_off: 'the runner (engine "google-v1") does not report its profile (an older runner?)',
    });
  });

  it("read --limit overrides as at-most, ranges and expected values", () => {
    expect(parseLimitOverride("greeting_latency=500")).toEqual({
      name: "greeting_latency",
      limit: { kind: "max", max: 500 },
    });
    expect(parseLimitOverride("partial_cadence=100..300")).toEqual({
      name: "partial_cadence",
      limit: { kind: "range", min: 100, max: 300 },
    });
    expect(parseLimitOverride("punctuation_off=true")).toEqual({
      name: "punctuation_off",
      limit: { kind: "equals", value: true },
    });
    expect(parseLimitOverride("nope=1")).toHaveProperty("error");
    expect(parseLimitOverride("buffering=lots")).toHaveProperty("error");
  });
});

describe("speech onset", () => {
  it(`is the first frame of the test recording louder than -40 dBFS (${speech.label}: its speech starts 0.24 s in)`, () => {
    expect(speechOnsetFrame(audio.pcm)).toBe(12);
  });

  it("is undefined in silence", () => {
    expect(speechOnsetFrame(new Int16Array(8000))).toBeUndefined();
  });
});
