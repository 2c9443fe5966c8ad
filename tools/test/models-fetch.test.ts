/**
 * `ozen models fetch` end to end: the CLI runs the worker's fetch against the stand-in Hugging
 * Face hub on loopback (stt-runner/whisper/tests/hub_standin.py, serving the tiny.en installed
 * here), and `ozen models` then lists what it fetched. The worker's own tests cover each failure;
 * these check that the CLI passes arguments, output and exit codes through.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const workerDir = path.join(repoRoot, "stt-runner/whisper");
const python = path.join(workerDir, ".venv/bin/python");
const ozen = path.join(repoRoot, "tools/bin/ozen.js");
const REPO = "ozen-test/whisper-tiny.en-ct2";

let hub: ChildProcess;
let endpoint: string;
let tmp: string;

function run(args: string[], env: Record<string, string> = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HF_")));
  const r = spawnSync(process.execPath, [ozen, ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      ...base,
      HF_ENDPOINT: endpoint,
      HF_HOME: path.join(tmp, "hf-home"),
      HF_HUB_DISABLE_PROGRESS_BARS: "1",
      NO_PROXY: "127.0.0.1,localhost",
      ...env,
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!existsSync(python))("ozen models fetch (the worker's venv: make install)", () => {
  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-models-fetch-"));
    hub = spawn(python, [path.join(workerDir, "tests/hub_standin.py")], { cwd: workerDir });
    endpoint = await new Promise<string>((resolve, reject) => {
      createInterface({ input: hub.stdout! }).once("line", resolve);
      hub.once("exit", (code) => reject(new Error(`the stand-in hub exited ${code}`)));
    });
  }, 60_000);

  afterAll(() => {
    hub?.stdin?.end();
    hub?.kill();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("fetches into --dir (relative to the caller) and `ozen models` lists it with its source", () => {
    const dir = path.relative(repoRoot, path.join(tmp, "models"));
    const fetched = run(["models", "fetch", REPO, "--dir", dir, "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const target = path.join(tmp, "models", "ozen-test--whisper-tiny.en-ct2");
    expect(JSON.parse(fetched.stdout)).toMatchObject({ name: "tiny.en", path: target });
    expect(fetched.stderr).toMatch(/verified 4 files against the hub's checksums/);

    const listed = run(["models", "--json"], { OZEN_WHISPER_MODELS_DIR: path.join(tmp, "models") });
    expect(listed.code, listed.stderr).toBe(0);
    const mine = (JSON.parse(listed.stdout) as { path: string; source: string }[]).find((m) => m.path === target);
    expect(mine?.source).toMatch(/^hf:ozen-test\/whisper-tiny\.en-ct2@[0-9a-f]{40}$/);
  }, 120_000);

  it("passes the worker's exit code and message through: 3 for an unknown repository", () => {
    const r = run(["models", "fetch", "ozen-test/no-such-model", "--dir", path.join(tmp, "other")]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no model repository ozen-test\/no-such-model on http:\/\/127\.0\.0\.1:/);
  }, 60_000);

  it("needs exactly one repository id", () => {
    const r = run(["models", "fetch"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/models fetch takes one repository id/);
  });
});
