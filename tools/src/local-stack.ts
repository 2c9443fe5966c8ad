/**
 * The local stack on this machine, for `ozen demo`, the benchmarks and the GO check's tests: the
 * edge on real workerd (Miniflare, `@ozen/edge/local`) with a runner beside it, either the runner
 * process (`stt-runner/src/main.ts`, as deployed, with the engine named) or a `RelayServer` in this
 * process with an engine object (a stand-in, or one whose sockets a benchmark reads). Both sides get
 * the same relay secret, a fresh random one per stack, so the relay is authenticated as in
 * production (the runner is never started with --insecure-local here).
 */
import { createServer } from "node:net";
import path from "node:path";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, RelayServerOptions } from "@ozen/stt-runner";
import { startLocalEdge } from "@ozen/edge/local";
import type { LocalEdge } from "@ozen/edge/local";
import { spawnTs } from "./bench/procs.js";
import type { NodeChild } from "./bench/procs.js";
import { repoRoot } from "./whisper-env.js";
import { newRelaySecret } from "./relay-secret.js";

/** The runner as a process: `stt-runner/src/main.ts --engine NAME`, configured by `env`. */
export interface RunnerProcessChoice {
  readonly process: "null" | "whisper" | "google" | "auto";
  readonly env?: NodeJS.ProcessEnv;
}

/** A `RelayServer` in this process around `engine`. */
export interface RunnerInProcessChoice {
  readonly engine: Engine;
  /** The transcript policy between engine and edge, composed as `stt-runner/src/main.ts` does. */
  readonly transcripts?: boolean;
  /** Or a listener of one's own per call (it gets the call's `send`); wins over `transcripts`. */
  readonly listenerFor?: RelayServerOptions["listenerFor"];
}

export interface LocalStackOptions {
  readonly runner: RunnerProcessChoice | RunnerInProcessChoice;
  /** Twilio's auth token the edge checks signatures with (default `local-auth-token`). */
  readonly authToken?: string;
  /** The edge's API_TOKEN (default `local-api-token`). */
  readonly apiToken?: string;
  /** The edge's port (default: a free one). */
  readonly port?: number;
  /** The edge's PUBLIC_BASE_URL, which the simulator signs over (default: the edge's own URL). */
  readonly publicUrl?: string;
  /** More edge settings (`INGEST_ACK`, `BENCH_NAIVE`, webhooks, ...); they win over the defaults. */
  readonly vars?: Record<string, string>;
  /** Forward the Worker's console to this process (default: off). */
  readonly verbose?: boolean;
}

export interface LocalStack {
  /** The edge, `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly publicUrl: string;
  readonly authToken: string;
  readonly apiToken: string;
  readonly edge: LocalEdge;
  readonly runnerPort: number;
  /** The relay's secret the edge signs with and the runner checks (random per stack). */
  readonly relaySecret: string;
  /** The runner process, when the runner runs as one. */
  readonly runnerProcess?: NodeChild;
  /** The runner's server, when it runs in this process. */
  readonly relay?: RelayServer;
  /** Stops the edge and the runner (SIGTERM to a runner process, awaited). */
  close(): Promise<void>;
}

/** A TCP port free on loopback now (the edge binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === "object" ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

async function startRunner(
  choice: RunnerProcessChoice | RunnerInProcessChoice,
  relaySecret: string,
): Promise<{ port: number; runnerProcess?: NodeChild; relay?: RelayServer; close(): Promise<void> }> {
  if ("process" in choice) {
    const child = spawnTs(path.join(repoRoot, "stt-runner/src/main.ts"), ["--port", "0", "--engine", choice.process], {
      ...choice.env,
      RELAY_SECRET: relaySecret,
    });
    const port = Number((await child.waitFor(/"port":(\d+)/))[1]);
    return {
      port,
      runnerProcess: child,
      close: async () => {
        child.child.kill("SIGTERM");
        await child.exited;
      },
    };
  }
  const engine = choice.engine;
  const listenerFor: RelayServerOptions["listenerFor"] =
    choice.listenerFor ??
    (choice.transcripts
      ? (start, send, clock) =>
          new TranscriptForwarder({ start, engine: engine.name, profile: engine.profile, send, clock })
      : undefined);
  const relay = new RelayServer({
    engine,
    port: 0,
    relaySecret,
    log: () => {},
    ...(listenerFor ? { listenerFor } : {}),
  });
  const port = await relay.listen();
  return { port, relay, close: () => relay.close() };
}

/** Starts the runner, then the edge pointed at it; `close()` stops both. */
export async function startLocalStack(o: LocalStackOptions): Promise<LocalStack> {
  const authToken = o.authToken ?? "local-auth-token";
  const apiToken = o.apiToken ?? "local-api-token";
  const relaySecret = newRelaySecret();
  const runner = await startRunner(o.runner, relaySecret);
  try {
    const port = o.port ?? (await freePort());
    const url = `http://127.0.0.1:${port}`;
    const publicUrl = o.publicUrl ?? url;
    const edge = await startLocalEdge({
      port,
      verbose: o.verbose ?? false,
      vars: {
        PUBLIC_BASE_URL: publicUrl,
        RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
        RELAY_SECRET: relaySecret,
        TWILIO_AUTH_TOKEN: authToken,
        API_TOKEN: apiToken,
        ...o.vars,
      },
    });
    return {
      url: edge.url,
      publicUrl,
      authToken,
      apiToken,
      edge,
      runnerPort: runner.port,
      relaySecret,
      ...(runner.runnerProcess ? { runnerProcess: runner.runnerProcess } : {}),
      ...(runner.relay ? { relay: runner.relay } : {}),
      close: async () => {
        await edge.close();
        await runner.close();
      },
    };
  } catch (e) {
    await runner.close();
    throw e;
  }
}
