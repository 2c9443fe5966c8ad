export { RelayServer } from "./relay-server.js";
export type { RelayServerOptions, RunnerCounters } from "./relay-server.js";
export { nullEngine } from "./engines/null.js";
export type { Engine, EngineSession } from "./engines/engine.js";
export { TranscriptForwarder, ArrivalClock } from "./transcripts.js";
export { GoogleEngine } from "./engines/google/engine.js";
export { loadGoogleConfig } from "./engines/google/config.js";
export { withSpeechActivity } from "./speech-activity.js";
