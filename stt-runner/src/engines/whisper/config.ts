/**
 * Settings of the whisper worker and its engine, read once from the environment and validated;
 * each is declared once in `WHISPER_SETTINGS` (docs/settings.md is generated from it).
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SettingError, mergePhrases, readSettings, setting } from "@ozen/shared";
import type { RelayStart, SettingsEnv } from "@ozen/shared";
import { callOwnPhraseList, configuredPhrases } from "../../call-phrases.js";
import { PHRASES_SETTING } from "../google/config.js";

export interface WhisperConfig {
  /** The worker's Python (its venv). */
  readonly python: string;
  /** Directory the worker runs in (where `ozen_whisper` is importable). */
  readonly workerDir: string;
  /** Model name or directory the worker loads (`tiny.en`, a CTranslate2 directory, ...). */
  readonly model: string;
  /** Where the worker runs its model: `auto` (CUDA when CTranslate2 sees a GPU), `cpu` or `cuda`. */
  readonly device: WhisperDevice;
  /** CTranslate2 compute type; `auto`: float16 on a GPU, int8 on the CPU. */
  readonly computeType: WhisperComputeType;
  /** Extra arguments for `ozen_whisper serve` (pool, windows), split on spaces; they come last, so they win. */
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

/** The worker's devices (`ozen_whisper.device.DEVICES`). */
export const WHISPER_DEVICES = ["auto", "cpu", "cuda"] as const;
export type WhisperDevice = (typeof WHISPER_DEVICES)[number];

/** CTranslate2's compute types (its quantization docs), and `auto`. */
export const WHISPER_COMPUTE_TYPES = [
  "auto",
  "int8",
  "int8_float32",
  "int8_float16",
  "int8_bfloat16",
  "int16",
  "float16",
  "bfloat16",
  "float32",
] as const;
export type WhisperComputeType = (typeof WHISPER_COMPUTE_TYPES)[number];

/** Compute types CTranslate2 runs only on a GPU (its CPU build supports int8, int8_float32, int16, float32). */
const GPU_ONLY_COMPUTE_TYPES: ReadonlySet<WhisperComputeType> = new Set([
  "int8_float16",
  "int8_bfloat16",
  "float16",
  "bfloat16",
]);

/** `stt-runner/whisper`, next to this package's sources. */
export const DEFAULT_WORKER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../whisper");

export const WHISPER_SETTINGS = {
  WHISPER_MODEL: setting.string({
    description:
      "Model the worker loads: a name `python -m ozen_whisper models` lists (`tiny.en`, `base`) or a CTranslate2 " +
      "directory (a relative one from the worker's directory; its size sets `OZEN_MAX_CALLS`'s default). " +
      "Production Hebrew: `ivrit-ai/whisper-large-v3-turbo-ct2`, float16 on a GPU.",
    // multilingual (the default language is Hebrew); production: ivrit-ai/whisper-large-v3-turbo-ct2 on a GPU
    default: "base",
  }),
  WHISPER_LANGUAGE: setting.string({
    description: 'Language whisper is forced to when the call does not say (`<Parameter name="ozen_language">`).',
    default: "he",
    pattern: /^[a-z]{2,3}$/,
    expected: "a code like he or en",
  }),
  WHISPER_HINTS: setting.list({
    description:
      "Phrase hints (hotwords) for every call, comma-separated; a call adds its own (docs/api.md). Empty: none. " +
      "Each phrase is checked at start like `GOOGLE_PHRASES`'.",
    separator: "comma-or-bar",
    emptyIsValue: true,
    defaultText: "`GOOGLE_PHRASES`",
  }),
  GOOGLE_PHRASES: PHRASES_SETTING,
  OZEN_WHISPER_DEVICE: setting.choice({
    description:
      "Where the worker runs its model: `auto` (CUDA when CTranslate2 sees a GPU, else the CPU), `cpu`, or `cuda` " +
      "(the worker refuses to start without a usable GPU).",
    values: WHISPER_DEVICES,
    default: "auto",
  }),
  OZEN_WHISPER_COMPUTE: setting.choice({
    description:
      "CTranslate2 compute type: `auto` (`float16` on a GPU, `int8` on the CPU), `int8_float16` on a GPU to halve " +
      "the weights' memory; the worker refuses a type its device does not support.",
    values: WHISPER_COMPUTE_TYPES,
    default: "auto",
  }),
  WHISPER_PYTHON: setting.string({
    description: "The worker's interpreter (`make install` builds the venv).",
    defaultText: "`stt-runner/whisper/.venv/bin/python` when it exists, else `python3`",
  }),
  WHISPER_WORKER_DIR: setting.string({
    description: "The worker's directory (where `ozen_whisper` is importable).",
    defaultText: "`stt-runner/whisper`",
  }),
  WHISPER_WORKER_ARGS: setting.list({
    description:
      "Extra `ozen_whisper serve` flags (`--pool 2 --cpu-threads 4`); after the device flags, so a `--device` here wins.",
    separator: "space",
    default: [],
  }),
  WHISPER_READY_TIMEOUT_MS: setting.number({
    description: "How long the worker may take to load its model, at start and after a restart, ms.",
    default: 120_000,
    min: 1000,
    max: 600_000,
  }),
  WHISPER_RESTART_BACKOFF_MS: setting.number({
    description: "A worker that dies is restarted after this delay, ms (doubling, at most 5 s).",
    default: 200,
    min: 10,
    max: 5000,
  }),
  WHISPER_MAX_RESTARTS: setting.number({
    description: "Failed restarts in a row before the worker is given up (its calls get `engine.switched` to `none`).",
    default: 5,
    min: 1,
    max: 100,
  }),
  WHISPER_REPLAY_MAX_S: setting.number({
    description: "Most audio a call keeps since its last whisper final, replayed to a restarted worker, s.",
    default: 120,
    min: 5,
    max: 600,
  }),
  WHISPER_END_TIMEOUT_MS: setting.number({
    description: "How long the end of a call waits for whisper's last final, ms.",
    default: 30_000,
    min: 100,
    max: 300_000,
  }),
  WHISPER_WATCHDOG_MS: setting.number({
    description:
      "A worker silent this long (asked for stats every quarter of it) is killed and restarted, ms; 0: never.",
    default: 30_000,
    min: 0,
    max: 600_000,
  }),
} as const;

/** Reads and checks the whisper engine's settings; throws `SettingError`. */
export function loadWhisperConfig(env: SettingsEnv): WhisperConfig {
  const s = readSettings(WHISPER_SETTINGS, env);
  const workerDir = s.WHISPER_WORKER_DIR ?? DEFAULT_WORKER_DIR;
  const venvPython = path.join(workerDir, ".venv", "bin", "python");
  if (s.OZEN_WHISPER_DEVICE === "cpu" && GPU_ONLY_COMPUTE_TYPES.has(s.OZEN_WHISPER_COMPUTE)) {
    throw new SettingError({
      setting: "OZEN_WHISPER_COMPUTE",
      value: s.OZEN_WHISPER_COMPUTE,
      problem: `is ${s.OZEN_WHISPER_COMPUTE}, which CTranslate2 runs only on a GPU, and OZEN_WHISPER_DEVICE is cpu`,
      expected: "auto, int8, int8_float32, int16 or float32 on the CPU",
    });
  }
  return {
    python: s.WHISPER_PYTHON ?? (existsSync(venvPython) ? venvPython : "python3"),
    workerDir,
    model: s.WHISPER_MODEL,
    device: s.OZEN_WHISPER_DEVICE,
    computeType: s.OZEN_WHISPER_COMPUTE,
    workerArgs: s.WHISPER_WORKER_ARGS,
    language: s.WHISPER_LANGUAGE,
    hints:
      s.WHISPER_HINTS === undefined
        ? configuredPhrases("GOOGLE_PHRASES", s.GOOGLE_PHRASES)
        : configuredPhrases("WHISPER_HINTS", s.WHISPER_HINTS),
    readyTimeoutMs: s.WHISPER_READY_TIMEOUT_MS,
    restartBackoffMs: s.WHISPER_RESTART_BACKOFF_MS,
    maxRestarts: s.WHISPER_MAX_RESTARTS,
    replayMaxS: s.WHISPER_REPLAY_MAX_S,
    endTimeoutMs: s.WHISPER_END_TIMEOUT_MS,
    watchdogMs: s.WHISPER_WATCHDOG_MS,
  };
}

/**
 * The worker's command line after the interpreter: `-m ozen_whisper serve`, the model, the device
 * and compute type (the worker resolves `auto`, `ozen_whisper/device.py`), then WHISPER_WORKER_ARGS.
 */
export function workerCommandArgs(config: WhisperConfig): string[] {
  return [
    "-m",
    "ozen_whisper",
    "serve",
    "--model",
    config.model,
    "--device",
    config.device,
    "--compute-type",
    config.computeType,
    ...config.workerArgs,
  ];
}

/** The language of one call: its `ozen_language` parameter (`he-IL` -> `he`), else the configured one. */
export function callLanguage(config: WhisperConfig, customParameters: Readonly<Record<string, string>>): string {
  const tag = customParameters["ozen_language"];
  const primary = tag?.split("-")[0]?.toLowerCase();
  return primary && /^[a-z]{2,3}$/.test(primary) ? (primary === "iw" ? "he" : primary) : config.language;
}

/** Phrase hints of one call: the configured ones, then the call's own (`call-phrases.ts`), each once. */
export function callHints(config: WhisperConfig, start: Pick<RelayStart, "phrases" | "customParameters">): string[] {
  return mergePhrases([config.hints, callOwnPhraseList(start)], 200);
}
