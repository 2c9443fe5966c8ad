/**
 * Applies `infra/d1/migrations/*.sql` to a D1 database in name order, each once, recording them
 * in `d1_migrations` as `wrangler d1 migrations apply` does (same table), so a local database
 * (Miniflare's, for tests and `ozen demo`) has the schema production gets from wrangler.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { D1Database } from "@cloudflare/workers-types/experimental";
import { fileURLToPath } from "node:url";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../infra/d1/migrations/", import.meta.url));

/** The statements of a migration file: `--` comments dropped, split at `;` that end a line. */
export function statementsOf(sql: string): string[] {
  return sql
    .split("\n")
    .map((line) => line.replace(/--.*$/, ""))
    .join("\n")
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Applies the migrations `db` lacks; returns their names. */
export async function applyD1Migrations(db: D1Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  await db
    .prepare(
      "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .run();
  const done = new Set(
    (await db.prepare("SELECT name FROM d1_migrations").all<{ name: string }>()).results.map((r) => r.name),
  );
  const applied: string[] = [];
  for (const name of (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort()) {
    if (done.has(name)) continue;
    const statements = statementsOf(await readFile(join(dir, name), "utf8")).map((s) => db.prepare(s));
    statements.push(db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(name));
    await db.batch(statements);
    applied.push(name);
  }
  return applied;
}
