/**
 * The edge on real workerd through Miniflare, for tests, benchmarks and `make demo`: the
 * bundled Worker with its three Durable Object classes and the given vars.
 */
import type { Readable } from "node:stream";
import type { D1Database } from "@cloudflare/workers-types/experimental";
import { Miniflare } from "miniflare";
import { buildWorker } from "./build.js";
import { applyD1Migrations } from "./d1-migrations.js";

export interface LocalEdge {
  readonly url: string;
  readonly mf: Miniflare;
  /** The D1 database bound as `DB`, with infra/d1/migrations applied. */
  d1(): Promise<D1Database>;
  close(): Promise<void>;
}

export interface LocalEdgeOptions {
  readonly vars: Record<string, string>;
  /** Directory for Durable Object storage; in memory when unset. */
  readonly persistDir?: string;
  readonly port?: number;
  /** Forward the Worker's console to this process (default: on). */
  readonly verbose?: boolean;
  /** Receives each line the Worker writes (console output), instead of forwarding it. */
  readonly onOutput?: (line: string) => void;
}

function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) if (line) onLine(line);
  });
}

export async function startLocalEdge(o: LocalEdgeOptions): Promise<LocalEdge> {
  const scriptPath = await buildWorker();
  const onOutput = o.onOutput;
  const stdio = onOutput
    ? (stdout: Readable, stderr: Readable) => {
        forEachLine(stdout, onOutput);
        forEachLine(stderr, onOutput);
      }
    : o.verbose === false
      ? () => {}
      : undefined;
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    compatibilityDate: "2026-04-01",
    host: "127.0.0.1",
    port: o.port ?? 0,
    bindings: o.vars,
    durableObjects: {
      CALL_SESSION: { className: "CallSession", useSQLite: true },
      NAIVE_SESSION: { className: "NaiveCallSession", useSQLite: true },
      EDGE_METRICS: { className: "EdgeMetrics", useSQLite: true },
      ACCOUNT_HUB: { className: "AccountHub", useSQLite: true },
    },
    durableObjectsPersist: o.persistDir ?? false,
    d1Databases: { DB: "ozen-local" },
    d1Persist: o.persistDir ? `${o.persistDir}/d1` : false,
    ...(stdio ? { handleRuntimeStdio: stdio } : {}),
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const d1 = () => mf.getD1Database("DB");
  await applyD1Migrations(await d1());
  return { url, mf, d1, close: () => mf.dispose() };
}
