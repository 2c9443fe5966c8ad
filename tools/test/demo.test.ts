import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { callSpeech } from "../src/speech-data.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const workerVenv = path.join(repoRoot, "stt-runner/whisper/.venv/bin/python");
const why = !existsSync(workerVenv) ? "the whisper worker's venv is missing (make install)" : undefined;
// the demo's own choice: Hebrew from ../shared/data when it is there, else the project's English prompts
const speech = callSpeech();

function runDemo(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, "tools/bin/ozen.js"), "demo"], {
      cwd: repoRoot,
      env: { ...process.env, HF_HUB_OFFLINE: "1" },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

describe.skipIf(why !== undefined)(`make demo (${why ?? "whisper worker present"})`, () => {
  it(`transcribes the call (${speech.source === "shared" ? "Hebrew" : "English"}) through edge, runner and worker: live partials with a latency, then the finals`, async () => {
    const { code, out } = await runDemo();
    expect(code, out).toBe(0);
    const partials = out.split("\n").filter((l) => /\bpartial\s+\d+ ms\s+\S/.test(l));
    expect(partials.length, out).toBeGreaterThan(0);
    const finalLine = out.split("\n").find((l) => /\bFINAL\s+\d+ ms\s+\S/.test(l));
    expect(finalLine, out).toBeDefined();
    const finals = out.slice(out.indexOf("finals:"));
    if (speech.source === "shared") {
      // the recording says "shalom, zo habdika shel ma'arekhet hatamlul"
      expect(finals).toMatch(/שלום/);
    } else {
      // the project's three prompts: password, directory, channel
      expect(finals.toLowerCase()).toMatch(/password[\s\S]*person[\s\S]*channel/);
    }
  }, 180_000);
});
