/**
 * Bundles the Worker for Miniflare (tests, benchmarks) the way wrangler does for `wrangler dev`:
 * ES module, workerd conditions, `.ulaw` assets as binary data, `.html` as text.
 */
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const edgeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export const WORKER_BUNDLE = path.join(edgeDir, "dist", "worker.js");

export async function buildWorker(): Promise<string> {
  await build({
    entryPoints: [path.join(edgeDir, "src", "index.ts")],
    outfile: WORKER_BUNDLE,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    loader: { ".ulaw": "binary", ".html": "text" },
    logLevel: "warning",
  });
  return WORKER_BUNDLE;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  console.log(await buildWorker());
}
