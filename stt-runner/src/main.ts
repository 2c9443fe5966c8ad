/**
 * The stt-runner entry point (the Dockerfile runs this same command).
 *   node --import tsx stt-runner/src/main.ts [--port 8081] [--host 0.0.0.0] [--engine null]
 * PORT (Cloud Run) overrides the default port.
 */
import { parseArgs } from "node:util";
import { nullEngine } from "./engines/null.js";
import { RelayServer } from "./relay-server.js";
import type { Engine } from "./engines/engine.js";

const ENGINES: Record<string, Engine> = { null: nullEngine };

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env["PORT"] ?? "8081" },
    host: { type: "string", default: process.env["HOST"] ?? "127.0.0.1" },
    engine: { type: "string", default: process.env["OZEN_ENGINE"] ?? "null" },
  },
});

const engine = ENGINES[values.engine];
if (!engine) {
  console.error(`unknown engine ${JSON.stringify(values.engine)}; available: ${Object.keys(ENGINES).join(", ")}`);
  process.exit(2);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`port ${JSON.stringify(values.port)} is not a TCP port`);
  process.exit(2);
}
const server = new RelayServer({ engine, port, host: values.host });
const bound = await server.listen();
console.log(JSON.stringify({ level: "info", msg: "stt-runner listening", port: bound, engine: engine.name }));
// Cloud Run sends SIGTERM and allows 10 s: move every call to another instance, then exit
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.once(sig, () => {
    console.log(JSON.stringify({ level: "info", msg: "draining", signal: sig, activeCalls: server.activeCalls }));
    void server.drain(8000).then(() => process.exit(0));
  });
}
