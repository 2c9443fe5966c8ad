/**
 * A smoke run of `ozen bench turn`: one short utterance of the project's speech (tools/speech,
 * whisper tiny.en), one barge-in per policy, a few plays on an idle line. It checks the JSON has
 * every key of the issue with figures in it, and the one that must hold however loaded the
 * machine: no agent frame reaches the caller after a clear. The figures are the benchmark's
 * business (docs/benchmarks.md), not this test's.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-bench-turn-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("ozen bench turn", () => {
  it("measures a turn, a barge-in per policy and the play path, and writes the JSON", async () => {
    const json = path.join(tmp, "turn.json");
    const args = [
      path.join(repoRoot, "tools/bin/ozen.js"),
      ...["bench", "turn", "--set", path.join(repoRoot, "tools/speech"), "--files", "1"],
      ...["--barge-ins", "1", "--play-samples", "5", "--json", json],
    ];
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((r) => child.on("close", r));
    expect(code, stderr).toBe(0);
    const out = JSON.parse(readFileSync(json, "utf8")) as Record<string, any>;
    for (const key of [
      "turn_gap_ms_p50",
      "turn_gap_ms_p95",
      "ozen_share_ms_p50",
      "play_path_ms_p50",
      "play_path_ms_p99",
    ])
      expect(out[key], key).toEqual(expect.any(Number));
    for (const key of ["barge_in_ms_p50", "barge_in_ms_p95"])
      expect(Object.keys(out[key]).sort(), key).toEqual(["meaningful", "speech"]);
    expect(out["details"].turns).toBe(1);
    expect(out["details"].play_path_samples).toBe(5);
    // the turn gap is the engine's TTFS, ozen's share and the agent's time
    expect(out["turn_gap_ms_p50"]).toBeGreaterThan(out["engine_ttfs_ms_p50"]);
    expect(out["frames_after_clear"]).toBe(0);
    expect(out["loadavg_start"]).toHaveLength(3);
  }, 240_000);
});
