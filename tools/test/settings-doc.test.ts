/**
 * docs/settings.md cannot drift from the settings' declarations, and no setting is read without
 * one: the page is regenerated and compared, and the edge's and the runner's sources (plus
 * wrangler.toml and .dev.vars.example) are scanned for environment variables by name.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { declaredSettingNames } from "@ozen/shared";
import { DEPLOYABLES, settingsDoc } from "../src/settings-doc.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const read = (rel: string) => readFileSync(path.join(repo, rel), "utf8");

/** Variables a TypeScript source reads by name: `env["X"]`, `env.X`, `process.env["X"]`, `process.env.X` (not written: `= ...`). */
function variablesRead(source: string): string[] {
  const names = new Set<string>();
  for (const m of source.matchAll(
    /\benv(?:\s*\[\s*["'`]([A-Z][A-Z0-9_]*)["'`]\s*\]|\.([A-Z][A-Z0-9_]*)\b)(?!\s*=[^=])/g,
  )) {
    names.add((m[1] ?? m[2])!);
  }
  return [...names];
}

function sources(dir: string): { file: string; text: string }[] {
  return readdirSync(path.join(repo, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => ({ file: path.join(dir, f), text: read(path.join(dir, f)) }));
}

/** The edge's bindings (Durable Objects, D1): `env.X` that are not settings. */
function edgeBindings(): Set<string> {
  return new Set([...read("edge/src/env.ts").matchAll(/readonly ([A-Z][A-Z0-9_]*)\??:/g)].map((m) => m[1]!));
}

describe("docs/settings.md", () => {
  it("is what the declarations generate (regenerate: node --import tsx tools/src/settings-doc.ts > docs/settings.md)", async () => {
    expect(read("docs/settings.md")).toBe(await settingsDoc());
  });
});

describe("every setting read is declared", () => {
  const declared = declaredSettingNames(DEPLOYABLES);

  it("finds the reads the scan looks for", () => {
    expect(
      variablesRead("a = env[\"RUNNER_URL\"]; b = process.env.PORT; c = process.env['HOST']; d = c.env.DB; e = env[k]"),
    ).toEqual(["RUNNER_URL", "PORT", "HOST", "DB"]);
  });

  it("in edge/src and stt-runner/src", () => {
    const bindings = edgeBindings();
    const undeclared = [...sources("edge/src"), ...sources("stt-runner/src")].flatMap(({ file, text }) =>
      variablesRead(text)
        .filter((name) => !declared.has(name) && !(file.startsWith("edge") && bindings.has(name)))
        .map((name) => `${file}: ${name}`),
    );
    expect(undeclared).toEqual([]);
  });

  it("in wrangler.toml's [vars] and .dev.vars.example", () => {
    const vars = /\[vars\]\n([\s\S]*?)\n\[/.exec(read("wrangler.toml"))?.[1] ?? "";
    const names = [
      ...[...vars.matchAll(/^([A-Z][A-Z0-9_]*)\s*=/gm)].map((m) => m[1]!),
      ...[...read(".dev.vars.example").matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!),
    ];
    expect(names.length).toBeGreaterThan(5);
    expect(names.filter((n) => !declared.has(n))).toEqual([]);
  });
});
