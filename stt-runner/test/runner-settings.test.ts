/**
 * The runner's own settings as `main.ts` reads them: the engine grace (OZEN_ENGINE_GRACE_MS) in
 * range or a SettingError naming it, and a runner started with a bad one stops with that message.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DEFAULT_ENGINE_GRACE_MS } from "../src/relay-server.js";
import { loadServerSettings } from "../src/settings.js";
import { settingError } from "./setting-error.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("OZEN_ENGINE_GRACE_MS", () => {
  it("defaults to the engine grace the relay server had, and takes any whole ms from 0 to the 60 s resume grace", () => {
    expect(DEFAULT_ENGINE_GRACE_MS).toBe(800);
    expect(loadServerSettings({}).OZEN_ENGINE_GRACE_MS).toBe(800);
    expect(loadServerSettings({ OZEN_ENGINE_GRACE_MS: "" }).OZEN_ENGINE_GRACE_MS).toBe(800);
    for (const ms of [0, 1, 250, 2000, 60_000]) {
      expect(loadServerSettings({ OZEN_ENGINE_GRACE_MS: String(ms) }).OZEN_ENGINE_GRACE_MS).toBe(ms);
    }
  });

  it("refuses negative, too long, fractional and non-numeric values with a SettingError naming it and the range", () => {
    for (const bad of ["-1", "60001", "1e9", "800.5", "soon", "800ms"]) {
      const e = settingError(() => loadServerSettings({ OZEN_ENGINE_GRACE_MS: bad }));
      expect(e.setting).toBe("OZEN_ENGINE_GRACE_MS");
      expect(e.message).toContain(JSON.stringify(bad));
      expect(e.message).toMatch(/from 0 to 60000/);
    }
  });

  it("a runner started with a bad one stops at start with the message, before it listens", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), "--port", "0", "--engine", "null"],
      {
        cwd: repo,
        env: { ...process.env, RELAY_SECRET: "settings-test-relay-secret-0123", OZEN_ENGINE_GRACE_MS: "soon" },
        stdio: "pipe",
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    // a JSON log line: the value's quotes come escaped
    expect(out).toMatch(/runner: OZEN_ENGINE_GRACE_MS is \\"soon\\", expected a whole number from 0 to 60000/);
    expect(out).not.toMatch(/listening/);
  }, 60_000);
});
