/**
 * `ozen check` against a real local edge (workerd through Miniflare) and a real runner
 * (RelayServer + the transcript policy, composed as stt-runner/src/main.ts does), with the null
 * engine and with a level-following stand-in engine that says partials. The rules themselves
 * are tested with plain values.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RelayServer, TranscriptForwarder, nullEngine } from "@ozen/stt-runner";
import type { Engine } from "@ozen/stt-runner";
import { startLocalEdge } from "../../edge/scripts/local-edge.js";
import type { LocalEdge } from "../../edge/scripts/local-edge.js";
import { loadAudio8k } from "../src/audio.js";
import { DEFAULT_CHECK_AUDIO, runCheck } from "../src/check.js";
import { evaluate } from "../src/check/evaluate.js";
import type { CallMeasurements } from "../src/check/evaluate.js";
import { CHECK_NAMES, parseLimitOverride } from "../src/check/limits.js";
import { speechOnsetFrame } from "../src/check/onset.js";
import { levelEngine } from "./speech-engine.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const AUTH = "check-auth-token";
const API = "check-api-token";
const PUBLIC = "http://127.0.0.1:1";
const PARTIAL_CHECKS = ["first_partial", "partial_cadence"];

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

/** The relay's secret, on both sides. */
const RELAY_SECRET = "check-test-relay-secret-0123";
let runner: RelayServer;
let edge: LocalEdge;
const audio = loadAudio8k(DEFAULT_CHECK_AUDIO);

beforeAll(async () => {
  runner = new RelayServer({
    engine: switchable,
    port: 0,
    relaySecret: RELAY_SECRET,
    log: () => {},
    listenerFor: (start, send, clock) =>
      new TranscriptForwarder({ start, engine: switchable.name, profile: switchable.profile, send, clock }),
  });
  const port = await runner.listen();
  edge = await startLocalEdge({
    verbose: false,
    vars: {
      PUBLIC_BASE_URL: PUBLIC,
      RUNNER_URL: `ws://127.0.0.1:${port}/relay`,
      RELAY_SECRET,
      TWILIO_AUTH_TOKEN: AUTH,
      API_TOKEN: API,
    },
  });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

/** Runs `ozen check` as a process; resolves with its exit status and the --json report. */
function cli(args: string[]): Promise<{ code: number | null; report: any; stdout: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-check-"));
  const json = path.join(dir, "report.json");
  const child = spawn(
    process.execPath,
    [path.join(repo, "tools/bin/ozen.js"), "check", edge.url, "--public-url", PUBLIC, "--json", json, ...args],
    { env: { ...process.env, TWILIO_AUTH_TOKEN: AUTH, OZEN_API_TOKEN: API }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  return new Promise((resolve) => {
    child.on("exit", (code) => {
      let report: unknown;
      try {
        report = JSON.parse(readFileSync(json, "utf8"));
      } catch {
        report = undefined;
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, report, stdout });
    });
  });
}

describe("ozen check against a local edge and runner", () => {
  // retry: the timing checks (buffering p99 <= 250 ms) read a real call's wall clock, and one
  // stall of the 2-core CI machine (a 708 ms block age once) fails them; see the closing note
  it(
    "with the null engine: the partial checks fail saying it transcribes nothing; every other check passes",
    { retry: 2 },
    async () => {
      engine = nullEngine;
      // events by polling here; the CLI tests below take the WebSocket when the edge offers one
      const run = await runCheck({
        edgeUrl: edge.url,
        publicUrl: PUBLIC,
        authToken: AUTH,
        apiToken: API,
        audio,
        events: "poll",
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
      // summed whole-ms ticks over a short call (~10 ms over 268 frames here): measured, or said why not
      const decode = byName["table_decode"]!;
      if (decode.value === null) expect(decode.note).toMatch(/^not measurable: the edge's clock did not move/);
      else expect(decode.value).toBeLessThanOrEqual(0.25);
      expect(byName["punctuation_off"]!.value).toBe(false);
      expect(byName["feed_cadence"]!.value).toBeGreaterThanOrEqual(90);
      expect(byName["feed_cadence"]!.value).toBeLessThanOrEqual(110);
      expect(run.measurements.eventsVia).toMatch(/^polling/);
      expect(run.measurements.started?.engine).toBe("null");
      expect(run.pass).toBe(false);
    },
  );

  it(
    "exits 0 with every check passing when the engine says partials, and writes the --json report",
    { retry: 2, timeout: 60_000 },
    async () => {
      engine = levelEngine;
      const { code, report, stdout } = await cli([]);
      expect(stdout).toContain("GO: 8 of 8 checks pass");
      expect(code).toBe(0);
      expect(report.pass).toBe(true);
      expect(report.checks.map((c: { name: string }) => c.name)).toEqual([...CHECK_NAMES]);
      for (const c of report.checks) {
        expect(Object.keys(c)).toEqual(expect.arrayContaining(["name", "value", "limit", "unit", "pass"]));
        expect(c.pass).toBe(true);
      }
    },
  );

  it("exits 1 when one check fails (a limit tightened by --limit), naming it in the report", async () => {
    engine = levelEngine;
    const { code, report } = await cli(["--limit", "greeting_latency=0"]);
    expect(code).toBe(1);
    expect(report.pass).toBe(false);
    const failed = report.checks.filter((c: { pass: boolean }) => !c.pass);
    expect(failed).toEqual([expect.objectContaining({ name: "greeting_latency", limit: 0, unit: "ms", pass: false })]);
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
  it("is the first frame of the test recording louder than -40 dBFS (its speech starts about 0.24 s in)", () => {
    expect(speechOnsetFrame(audio.pcm)).toBe(12);
  });

  it("is undefined in silence", () => {
    expect(speechOnsetFrame(new Int16Array(8000))).toBeUndefined();
  });
});
