/**
 * Settings of the whisper worker and its engine, read once from the environment and validated.
 * Every setting is in the README table with its default.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SettingError, readList, readNumber } from "../settings.js";
import type { Env } from "../settings.js";

export interface WhisperConfig {
  /** The worker's Python (its venv). */
  readonly python: string;
  /** Directory the worker runs in (where `ozen_whisper` is importable). */
  readonly workerDir: string;
  /** Model name or directory the worker loads (`tiny.en`, a CTranslate2 directory, ...). */
  readonly model: string;
  /** Extra arguments for `ozen_whisper serve` (device, compute type, pool), split on spaces. */
  readonly workerArgs: readonly string[];
  /** Language the worker forces when the call does not say (`ozen_language`). */
  readonly language: string;
  readonly hints: readonly string[];
  readonly readyTimeoutMs: number;
  readonly restartBackoffMs: number;
  readonly maxRestarts: number;
  /** Most audio a session keeps for a replay after a worker restart, s. */
  readonly replayMaxS: number;
  /** How long the end of a call waits for its last final, ms. */
  readonly endTimeoutMs: number;
  /** A worker silent this long is killed and restarted, ms; 0: never. */
  readonly watchdogMs: number;
}

/** `stt-runner/whisper`, next to this package's sources. */
export const DEFAULT_WORKER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../whisper");

export function loadWhisperConfig(env: Env): WhisperConfig {
  const workerDir = env["WHISPER_WORKER_DIR"] || DEFAULT_WORKER_DIR;
  const venvPython = path.join(workerDir, ".venv", "bin", "python");
  const python = env["WHISPER_PYTHON"] || (existsSync(venvPython) ? venvPython : "python3");
  const language = env["WHISPER_LANGUAGE"] || "he";
  if (!/^[a-z]{2,3}$/.test(language)) {
    throw new SettingError(`WHISPER_LANGUAGE is ${JSON.stringify(language)}, expected a code like he or en`);
  }
  // multilingual (the default language is Hebrew); production: ivrit-ai/whisper-large-v3-turbo-ct2 on a GPU
  const model = env["WHISPER_MODEL"] || "base";
  return {
    python,
    workerDir,
    model,
    workerArgs: (env["WHISPER_WORKER_ARGS"] ?? "").split(/\s+/).filter((s) => s.length > 0),
    language,
    hints: readList(env["WHISPER_HINTS"] ?? env["GOOGLE_PHRASES"]),
    readyTimeoutMs: readNumber(env, "WHISPER_READY_TIMEOUT_MS", 120_000, 1000, 600_000),
    restartBackoffMs: readNumber(env, "WHISPER_RESTART_BACKOFF_MS", 200, 10, 5000),
    maxRestarts: readNumber(env, "WHISPER_MAX_RESTARTS", 5, 1, 100),
    replayMaxS: readNumber(env, "WHISPER_REPLAY_MAX_S", 120, 5, 600),
    endTimeoutMs: readNumber(env, "WHISPER_END_TIMEOUT_MS", 30_000, 100, 300_000),
    watchdogMs: readNumber(env, "WHISPER_WATCHDOG_MS", 30_000, 0, 600_000),
  };
}

/** The language of one call: its `ozen_language` parameter (`he-IL` -> `he`), else the configured one. */
export function callLanguage(config: WhisperConfig, customParameters: Readonly<Record<string, string>>): string {
  const tag = customParameters["ozen_language"];
  const primary = tag?.split("-")[0]?.toLowerCase();
  return primary && /^[a-z]{2,3}$/.test(primary) ? (primary === "iw" ? "he" : primary) : config.language;
}

/** Phrase hints of one call: the configured ones plus the call's `ozen_phrases`. */
export function callHints(config: WhisperConfig, customParameters: Readonly<Record<string, string>>): string[] {
  return [...new Set([...config.hints, ...readList(customParameters["ozen_phrases"])])].slice(0, 200);
}
