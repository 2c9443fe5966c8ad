/**
 * Where the tests' speech comes from: the shared data beside the repository when it is there (or
 * where OZEN_SHARED_DATA points), else the project's own prompts; and no test looks for the shared
 * data any other way, so hiding it (OZEN_SHARED_DATA=none, as CI does once) shows what a clone on
 * its own runs.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  EVALUATION_SETS,
  PROJECT_SPEECH,
  PROJECT_SPEECH_DIR,
  callSpeech,
  evaluationPath,
  sharedDataDir,
  testSpeech,
} from "../src/speech-data.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-speech-data-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A stand-in shared data folder with one Asterisk prompt and the Hebrew call. */
function fakeSharedData(): string {
  const dir = path.join(tmp, "data");
  mkdirSync(path.join(dir, "en/asterisk-8k"), { recursive: true });
  mkdirSync(path.join(dir, "he/dialog"), { recursive: true });
  writeFileSync(path.join(dir, "en/asterisk-8k/agent-pass.wav"), "");
  writeFileSync(path.join(dir, "he/dialog/hebrew_short.wav"), "");
  return dir;
}

describe("the shared data", () => {
  it("is where OZEN_SHARED_DATA points, hidden by `none`, absent when the folder is", () => {
    const dir = fakeSharedData();
    expect(sharedDataDir({ OZEN_SHARED_DATA: dir })).toBe(dir);
    expect(sharedDataDir({ OZEN_SHARED_DATA: "none" })).toBeUndefined();
    expect(sharedDataDir({ OZEN_SHARED_DATA: path.join(tmp, "nowhere") })).toBeUndefined();
  });

  it("gives a set's file when it is there, else a skip naming the set, what it is and how to get it", () => {
    const dir = fakeSharedData();
    expect(evaluationPath("en/asterisk-8k", "agent-pass.wav", { OZEN_SHARED_DATA: dir })).toEqual({
      path: path.join(dir, "en/asterisk-8k/agent-pass.wav"),
    });
    const missing = evaluationPath("he/saspeech", "sas_01.wav", { OZEN_SHARED_DATA: dir });
    expect(missing).toEqual({
      skip:
        `evaluation set he/saspeech (${EVALUATION_SETS["he/saspeech"]}) not found at ` +
        `${path.join(dir, "he/saspeech/sas_01.wav")}: put the shared speech data at ../shared/data or point ` +
        "OZEN_SHARED_DATA at it (docs/benchmarks.md, evaluation sets)",
    });
    expect(evaluationPath("vad", "", { OZEN_SHARED_DATA: "none" })).toEqual({
      skip: expect.stringMatching(/^evaluation set vad \(.*\) hidden by OZEN_SHARED_DATA=none; to run it, put /),
    });
  });
});

describe("the tests' speech", () => {
  it("is the real Asterisk prompt with the shared data, the project's own without it", () => {
    const dir = fakeSharedData();
    expect(testSpeech("password", { OZEN_SHARED_DATA: dir })).toMatchObject({
      path: path.join(dir, "en/asterisk-8k/agent-pass.wav"),
      source: "shared",
    });
    for (const name of ["password", "directory", "channel"] as const) {
      expect(testSpeech(name, { OZEN_SHARED_DATA: "none" })).toEqual({
        path: path.join(PROJECT_SPEECH_DIR, PROJECT_SPEECH[name].file),
        label: PROJECT_SPEECH[name].text,
        source: "project",
      });
    }
    expect(callSpeech({ OZEN_SHARED_DATA: dir })).toMatchObject({ source: "shared", language: "he" });
    expect(callSpeech({ OZEN_SHARED_DATA: "none" })).toMatchObject({ source: "project", language: "en" });
  });

  it("of the project is in the repository, its transcripts.json saying what each file says", () => {
    const listed = JSON.parse(readFileSync(path.join(PROJECT_SPEECH_DIR, "transcripts.json"), "utf8"));
    expect(listed).toEqual(Object.values(PROJECT_SPEECH).map((u) => ({ file: u.file, text: u.text })));
    const wavs = readdirSync(PROJECT_SPEECH_DIR).filter((f) => f.endsWith(".wav"));
    expect(wavs.sort()).toEqual(
      Object.values(PROJECT_SPEECH)
        .map((u) => u.file)
        .sort(),
    );
  });
});

/** Test sources, without their comment lines. */
function testSources(): { file: string; code: string }[] {
  const out: { file: string; code: string }[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!["node_modules", ".venv", ".venv-bench", ".models", "__pycache__"].includes(e.name)) walk(p);
      } else if (/\.(ts|py)$/.test(e.name) && /(^|\/)tests?\//.test(path.relative(repo, p))) {
        const code = readFileSync(p, "utf8")
          .split("\n")
          .filter((l) => !/^\s*(\/\/|\*|\/\*|#)/.test(l))
          .join("\n");
        out.push({ file: path.relative(repo, p), code });
      }
    }
  };
  for (const top of ["edge", "infra", "shared", "stt-runner", "tools"]) walk(path.join(repo, top));
  return out;
}

describe("every test", () => {
  it("finds the shared data only through tools/src/speech-data.ts (Python: the tests' conftest.py)", () => {
    const sources = testSources();
    expect(sources.length).toBeGreaterThan(20);
    const offenders = sources
      // the locators themselves, and this file, which checks the locator's messages
      .filter((s) => !["stt-runner/whisper/tests/conftest.py", "tools/test/speech-data.test.ts"].includes(s.file))
      .filter((s) => /shared\/data|["']shared["']\s*[/,]\s*["']data["']/.test(s.code))
      .map((s) => s.file);
    expect(offenders).toEqual([]);
  });
});
