import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { measureCall, turnsFromSpeech, wallAt } from "../src/bench/stt-measure.js";
import type { CallTrace, Observation } from "../src/bench/stt-measure.js";
import { loadSet, spokenReference } from "../src/bench/stt-sets.js";
import { WhisperLiveTranscript, parseSegments } from "../src/bench/whisperlive.js";
import { modelTable } from "../src/models.js";
import { PROJECT_SPEECH_DIR, evaluationPath } from "../src/speech-data.js";
import { parseModels } from "../src/whisper-env.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// real telephony prompts from ../shared/data, else the project's own (same format: transcripts.json)
const asterisk = evaluationPath("en/asterisk-8k");
const speechSet = "path" in asterisk ? asterisk.path : PROJECT_SPEECH_DIR;
const workerVenv = path.join(repoRoot, "stt-runner/whisper/.venv/bin/python");
const tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-bench-stt-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Frames sent every 20 ms from wall time 10 000. */
function frames(seconds: number): number[] {
  return Array.from({ length: (seconds * 1000) / 20 }, (_, i) => 10_000 + i * 20);
}

function trace(observations: Observation[], closedAtMs = 99_999): CallTrace {
  return { frameSentAtMs: frames(10), observations, closedAtMs };
}

describe("turns", () => {
  it("merges speech separated by less than a second into one turn", () => {
    expect(
      turnsFromSpeech([
        [500, 1500],
        [1900, 3000],
        [4500, 5000],
      ]),
    ).toEqual([
      { startMs: 500, endMs: 3000 },
      { startMs: 4500, endMs: 5000 },
    ]);
  });

  it("places audio time at the wall time its frame was sent", () => {
    expect(wallAt(frames(1), 0)).toBe(10_000);
    expect(wallAt(frames(1), 519)).toBe(10_500);
    expect(wallAt(frames(1), 5000)).toBe(10_980); // past the end: the last frame
  });
});

describe("measureCall", () => {
  const turns = [{ startMs: 1000, endMs: 3000 }];

  it("measures TTFP from the onset to the first text, TTFS from the end to the last final", () => {
    const m = measureCall(
      turns,
      trace([
        { kind: "partial", atMs: 11_600, audioEndMs: 1500, text: "hello" },
        { kind: "partial", atMs: 11_800, audioEndMs: 1700, text: "hello there" },
        { kind: "final", atMs: 13_400, audioStartMs: 900, audioEndMs: 2000, text: "hello there" },
        { kind: "final", atMs: 13_500, audioStartMs: 2100, audioEndMs: 3100, text: "friend" },
      ]),
    );
    expect(m.ttfpMs).toEqual([600]);
    expect(m.ttfsMs).toEqual([500]);
    expect(m.partialIntervalsMs).toEqual([200]);
    expect(m.turnsUnfinalised).toBe(0);
  });

  it("does not count a result that arrived before the onset or only covers audio before the turn", () => {
    const m = measureCall(
      [{ startMs: 5000, endMs: 6000 }],
      trace([
        { kind: "final", atMs: 14_900, audioStartMs: 1000, audioEndMs: 3000, text: "earlier" },
        { kind: "final", atMs: 15_200, audioStartMs: 1000, audioEndMs: 3000, text: "late final of before" },
        { kind: "partial", atMs: 15_700, audioEndMs: 5400, text: "now" },
        { kind: "final", atMs: 16_300, audioStartMs: 4900, audioEndMs: 6000, text: "now" },
      ]),
    );
    expect(m.ttfpMs).toEqual([700]);
    expect(m.ttfsMs).toEqual([300]);
  });

  it("counts a turn no final covers at the close of the session", () => {
    const m = measureCall(turns, trace([{ kind: "partial", atMs: 11_500, audioEndMs: 1300, text: "hel" }], 16_000));
    expect(m.turnsUnfinalised).toBe(1);
    expect(m.ttfsMs).toEqual([16_000 - 13_000]); // the turn ends at 3000 ms: frame 150, sent at 13 000
  });

  it("does not count a turn as finalised by a final that stops short of its end", () => {
    const m = measureCall(
      turns,
      trace([{ kind: "final", atMs: 11_900, audioStartMs: 1000, audioEndMs: 1800, text: "first half" }], 15_000),
    );
    expect(m.turnsUnfinalised).toBe(1);
    expect(m.ttfsMs).toEqual([2000]);
  });

  it("traces each turn: its first text, its partials with new text and its last final", () => {
    const m = measureCall(
      turns,
      trace([
        { kind: "partial", atMs: 11_500, audioEndMs: 1300, text: "a" },
        { kind: "partial", atMs: 11_700, audioEndMs: 1500, text: "a" },
        { kind: "partial", atMs: 11_900, audioEndMs: 1700, text: "a b" },
        { kind: "final", atMs: 13_300, audioStartMs: 900, audioEndMs: 3000, text: "a b c" },
      ]),
    );
    expect(m.turnTraces).toEqual([
      {
        start_ms: 1000,
        end_ms: 3000,
        first_text_ms: 500,
        partial_ms: [500, 900],
        final_ms: 300,
        finalised: true,
        final_path: null,
      },
    ]);
  });

  it("splits the last final's time into its legs, which add up to its TTFS", () => {
    const m = measureCall(
      turns,
      trace([
        {
          kind: "final",
          atMs: 12_000,
          audioStartMs: 900,
          audioEndMs: 1800,
          text: "a",
          runnerAtMs: 12_000,
          latencyMs: 90,
        },
        // the audio up to 3100 ms (frame 154, sent at 13 080) reached the runner at 13 150
        {
          kind: "final",
          atMs: 13_400,
          audioStartMs: 1800,
          audioEndMs: 3100,
          text: "b",
          runnerAtMs: 13_400,
          latencyMs: 250,
        },
      ]),
    );
    expect(m.ttfsMs).toEqual([400]);
    expect(m.turnTraces[0]!.final_path).toEqual({ audio_past_end_ms: 80, to_runner_ms: 70, in_runner_ms: 250 });
  });

  it("skips partials that repeat the text for the interval", () => {
    const m = measureCall(
      turns,
      trace([
        { kind: "partial", atMs: 11_500, audioEndMs: 1300, text: "a" },
        { kind: "partial", atMs: 11_700, audioEndMs: 1500, text: "a" },
        { kind: "partial", atMs: 11_900, audioEndMs: 1700, text: "a b" },
      ]),
    );
    expect(m.partialIntervalsMs).toEqual([400]);
  });
});

describe("WhisperLive's segments", () => {
  it("become partials and finals the way its client keeps the transcript", () => {
    const t = new WhisperLiveTranscript();
    t.add(parseSegments({ segments: [{ start: "0.000", end: "1.000", text: " that agent", completed: false }] })!, 1);
    t.add(
      parseSegments({
        segments: [
          { start: "0.000", end: "2.280", text: " That agent is on.", completed: true },
          { start: "2.280", end: "2.580", text: " Please", completed: false },
        ],
      })!,
      2,
    );
    t.add(
      parseSegments({
        segments: [
          { start: "0.000", end: "2.280", text: " That agent is on.", completed: true },
          { start: "2.280", end: "3.000", text: " Please enter", completed: false },
        ],
      })!,
      3,
    );
    expect(t.observations.map((o) => [o.kind, o.atMs, o.text.trim()])).toEqual([
      ["partial", 1, "that agent"],
      ["final", 2, "That agent is on."],
      ["partial", 2, "Please"],
      ["partial", 3, "Please enter"],
    ]);
    expect(t.text()).toBe("That agent is on. Please enter");
  });

  it("ignores messages without segments", () => {
    expect(parseSegments({ uid: "x", message: "SERVER_READY" })).toBeUndefined();
  });
});

describe("sets and models", () => {
  it("drops the speaker labels of dialog references", () => {
    expect(spokenReference("דובר 1: שלום\nדובר 2: בוקר טוב")).toBe("שלום\nבוקר טוב");
  });

  it("reads references beside the audio and a Sphinx transcription file", () => {
    const dir = path.join(tmp, "en", "mini");
    mkdirSync(dir, { recursive: true });
    for (const f of ["a.wav", "b.wav", "c.wav"]) writeFileSync(path.join(dir, f), "");
    writeFileSync(path.join(dir, "a.expected.txt"), "hello there");
    writeFileSync(path.join(dir, "transcription"), "<s> good morning </s> (b)\n");
    const s = loadSet(dir);
    expect(s.name).toBe("en/mini");
    expect(s.language).toBe("en");
    expect(s.items.map((i) => [i.id, i.reference])).toEqual([
      ["a.wav", "hello there"],
      ["b.wav", "good morning"],
    ]);
    expect(s.unreferenced).toEqual(["c.wav"]);
  });

  it("reads a set's language from the set, so a Hebrew set need not sit under he/", () => {
    const fromJson = path.join(tmp, "any", "hebrew-json");
    mkdirSync(fromJson, { recursive: true });
    writeFileSync(path.join(fromJson, "a.wav"), "");
    writeFileSync(
      path.join(fromJson, "transcripts.json"),
      JSON.stringify([{ file: "a.wav", text: "שלום", language: "he" }]),
    );
    expect(loadSet(fromJson)).toMatchObject({ language: "he", languageFrom: "transcripts.json" });

    const fromReadme = path.join(tmp, "he", "english-readme");
    mkdirSync(fromReadme, { recursive: true });
    writeFileSync(path.join(fromReadme, "a.wav"), "");
    writeFileSync(path.join(fromReadme, "a.txt"), "hello");
    writeFileSync(path.join(fromReadme, "README.md"), "# Prompts\n\n- **language**: en\n");
    expect(loadSet(fromReadme)).toMatchObject({ language: "en", languageFrom: "README" });
    expect(loadSet(fromReadme, "he")).toMatchObject({ language: "he", languageFrom: "option" });

    const folder = path.join(tmp, "he", "plain");
    mkdirSync(folder, { recursive: true });
    expect(loadSet(folder)).toMatchObject({ language: "he", languageFrom: "folder" });
  });

  it("refuses a set whose transcripts mix languages or name one it cannot score", () => {
    const dir = path.join(tmp, "en", "mixed");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, "transcripts.json"),
      JSON.stringify([
        { file: "a.wav", text: "hi", language: "en" },
        { file: "b.wav", text: "שלום", language: "he" },
      ]),
    );
    expect(() => loadSet(dir)).toThrow(/mixes languages/);
    writeFileSync(
      path.join(dir, "transcripts.json"),
      JSON.stringify([{ file: "a.wav", text: "hola", language: "es" }]),
    );
    expect(() => loadSet(dir)).toThrow(/language "es"/);
  });

  it("reads the worker's model list and prints it as a table", () => {
    const r = parseModels(
      JSON.stringify([{ name: "tiny.en", path: "/m/tiny", multilingual: false, size_mb: 75.5, source: "pypi:x" }]),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.models[0]).toMatchObject({ name: "tiny.en", sizeMb: 75.5, multilingual: false });
    expect(modelTable(r.models)).toContain("tiny.en  English only  76 MB");
    expect(parseModels("[{}]").ok).toBe(false);
    expect(parseModels("nope").ok).toBe(false);
  });
});

const KEYS = [
  "files",
  "audio_s",
  "ttfp_ms_p50",
  "ttfp_ms_p95",
  "partial_interval_ms_p50",
  "partial_interval_ms_p95",
  "ttfs_ms_p50",
  "ttfs_ms_p95",
  "wer",
  "wer_offline",
  "cpu_s_per_audio_s",
  "cores_used",
];

/** Runs `ozen bench stt ARGS`; resolves with the exit code, stdout and stderr. */
async function benchStt(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["tools/bin/ozen.js", "bench", "stt", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((r) => child.once("exit", (c) => r(c ?? -1)));
  return { code, stdout, stderr };
}

describe("ozen bench stt, usage", () => {
  it("prints its usage for --help and exits 0", async () => {
    const r = await benchStt(["--help"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("usage: ozen bench stt [options]");
    expect(r.stdout).toContain("--set DIR");
    expect(r.stdout).toContain("--ramp-p95-ms");
  }, 60_000);

  it("names an unknown option and points to the usage, without a stack trace", async () => {
    const r = await benchStt(["--no-such-flag"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--no-such-flag");
    expect(r.stderr).toContain("ozen bench stt --help");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});

describe("ozen bench stt, end to end", () => {
  const skip = !existsSync(workerVenv) ? "the whisper worker's venv is absent (make install)" : "";
  const setName = loadSet(speechSet).name;
  it.skipIf(skip !== "")(
    `runs one call of ${setName} through edge, runner and worker and writes the JSON ${skip ? `(skipped: ${skip})` : ""}`,
    async () => {
      const out = path.join(tmp, "stt.json");
      const args = ["tools/bin/ozen.js", "bench", "stt", "--engine", "whisper", "--model", "tiny.en"];
      args.push("--set", speechSet, "--files", "1", "--tail-s", "1", "--max-calls", "0", "--anchor", "none");
      args.push("--json", out);
      const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number>((r) => child.once("exit", (c) => r(c ?? -1)));
      expect(code, stderr).toBe(0);
      const j = JSON.parse(readFileSync(out, "utf8"));
      expect(Object.keys(j).sort()).toEqual(["anchor", "engine", "max_realtime_calls", "model", "sets"]);
      expect(j.engine).toBe("whisper");
      expect(j.model).toBe("tiny.en");
      const set = j.sets[setName];
      expect(Object.keys(set).sort()).toEqual([...KEYS].sort());
      expect(set.files).toBe(1);
      expect(set.wer).toBeLessThan(0.5);
      expect(set.ttfs_ms_p50).not.toBeNull();
      expect(set.cpu_s_per_audio_s).toBeGreaterThan(0);
      expect(set.cores_used).toBeGreaterThan(0);
      expect(j.anchor).toEqual({ whisperlive: { sets: {} } });
      const details = JSON.parse(readFileSync(out.replace(/\.json$/, ".details.json"), "utf8"));
      const file = details.sets[setName].files[0];
      expect(file.turn_traces.length).toBe(file.turns);
      expect(file.turn_traces[0]).toMatchObject({ finalised: true });
      expect(details.sets[setName]).toMatchObject({ language: "en", unreferenced: [] });
    },
    180_000,
  );
});
