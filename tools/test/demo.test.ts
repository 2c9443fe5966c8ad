import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const workerVenv = path.join(repoRoot, "stt-runner/whisper/.venv/bin/python");
const speech = path.join(repoRoot, "../shared/data/he/dialog/hebrew_short.wav");
const why = !existsSync(workerVenv)
  ? "the whisper worker's venv is missing (make install)"
  : !existsSync(speech)
    ? "../shared/data is absent"
    : undefined;

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

describe.skipIf(why !== undefined)(`make demo (${why ?? "whisper worker and ../shared/data present"})`, () => {
  it("transcribes the Hebrew call through edge, runner and worker: live partials with a latency, then the final", async () => {
    const { code, out } = await runDemo();
    expect(code, out).toBe(0);
    const partials = out.split("\n").filter((l) => /\bpartial\s+\d+ ms\s+\S/.test(l));
    expect(partials.length, out).toBeGreaterThan(0);
    const finalLine = out.split("\n").find((l) => /\bFINAL\s+\d+ ms\s+\S/.test(l));
    expect(finalLine, out).toBeDefined();
    // the recording says "shalom, zo habdika shel ma'arekhet hatamlul"
    expect(out.slice(out.indexOf("finals:"))).toMatch(/שלום/);
  }, 180_000);
});
