export { RelayServer } from "./relay-server.js";
export type { RelayServerOptions, RunnerCounters } from "./relay-server.js";
export { nullEngine } from "./engines/null.js";
export type { Engine, EngineSession } from "./engines/engine.js";
