/**
 * ozen models: the whisper models this machine has (the worker's own list: models that ship in
 * PyPI packages and those joined from parts at install time). Nothing is downloaded.
 */
import { fail, parseCommand } from "./args.js";
import { MODELS } from "./commands.js";
import { listModels } from "./whisper-env.js";
import type { ModelInfo } from "./whisper-env.js";

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
  console.log(
    "\nFor Hebrew in production: ivrit-ai/whisper-large-v3-turbo-ct2, float16 on a GPU (WHISPER_MODEL=<its directory>).",
  );
}
