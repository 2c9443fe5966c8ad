/**
 * The stt-runner entry point (the Dockerfile runs this same command).
 *   node --import tsx stt-runner/src/main.ts [--port 8081] [--host 0.0.0.0] [--engine null|google]
 * PORT (Cloud Run) overrides the default port; the Google engine reads GOOGLE_* settings.
 */
import { parseArgs } from "node:util";
import { nullEngine } from "./engines/null.js";
import { GoogleConfigError, loadGoogleConfig } from "./engines/google/config.js";
import { GoogleEngine, findCredentials } from "./engines/google/engine.js";
import { RelayServer } from "./relay-server.js";
import { TranscriptForwarder } from "./transcripts.js";
import type { Log } from "./relay-server.js";
import type { Engine } from "./engines/engine.js";

const log: Log = (level, msg, fields) => {
  if (level !== "info" || process.env["OZEN_LOG_LEVEL"] === "info")
    console.warn(JSON.stringify({ level, msg, ...fields }));
};

function fatal(message: string): never {
  console.error(JSON.stringify({ level: "error", msg: message }));
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env["PORT"] ?? "8081" },
    host: { type: "string", default: process.env["HOST"] ?? "127.0.0.1" },
    engine: { type: "string", default: process.env["OZEN_ENGINE"] ?? "null" },
  },
});

function makeEngine(name: string): Engine {
  switch (name) {
    case "null":
      return nullEngine;
    case "google": {
      let config;
      try {
        config = loadGoogleConfig(process.env);
      } catch (e) {
        if (e instanceof GoogleConfigError) fatal(`Google engine: ${e.message}`);
        throw e;
      }
      if (!config.insecure) {
        const creds = findCredentials(process.env);
        if ("error" in creds) fatal(`Google engine: ${creds.error}`);
        log("info", "Google credentials", { source: creds.source });
      }
      return new GoogleEngine(config, log);
    }
    default:
      return fatal(`unknown engine ${JSON.stringify(name)}; available: null, google`);
  }
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fatal(`port ${JSON.stringify(values.port)} is not a TCP port`);
const engine = makeEngine(values.engine);
const server = new RelayServer({
  engine,
  port,
  host: values.host,
  log,
  listenerFor: (start, send, clock) =>
    new TranscriptForwarder({ start, engine: engine.name, profile: engine.profile, send, clock }),
});
const bound = await server.listen();
console.log(JSON.stringify({ level: "info", msg: "stt-runner listening", port: bound, engine: engine.name }));
// Cloud Run sends SIGTERM and allows 10 s: move every call to another instance, then exit
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.once(sig, () => {
    console.log(JSON.stringify({ level: "info", msg: "draining", signal: sig, activeCalls: server.activeCalls }));
    void server.drain(8000).then(() => process.exit(0));
  });
}
