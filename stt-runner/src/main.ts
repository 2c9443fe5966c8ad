/**
 * The stt-runner entry point (the Dockerfile runs this same command).
 *   node --import tsx stt-runner/src/main.ts [--port 8081] [--host 0.0.0.0] [--engine auto|google|whisper|null]
 *     [--insecure-local]
 * PORT (Cloud Run) overrides the default port; the Google engine reads GOOGLE_* settings, the
 * whisper worker WHISPER_*, failover and the final pass OZEN_FAILOVER_*, OZEN_BREAKER_*,
 * OZEN_FINAL_PASS_* (declared in src/settings.ts and beside the engines; docs/settings.md).
 *
 * Relay authentication: RELAY_SECRET (shared with the edge) is required; without it the runner
 * stops at start unless told `--insecure-local` (or OZEN_RELAY_AUTH=off), which takes relay
 * sockets for any call with no credential and says so loudly (local development only).
 *
 * Engines: `google` (with the whisper worker beside it as failover and final pass: when it
 * starts with OZEN_FALLBACK=auto, always with =whisper, never with =none), `whisper` (the worker alone: no cloud), `auto` (the default: google when
 * Google credentials are found, else whisper), `null` (takes audio, says nothing).
 */
import { availableParallelism } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { SettingError, defaultMaxCalls, readSettings } from "@ozen/shared";
import { nullEngine } from "./engines/null.js";
import { GOOGLE_SETTINGS, loadGoogleConfig } from "./engines/google/config.js";
import { GoogleEngine, findCredentials } from "./engines/google/engine.js";
import { FailoverEngine, loadFailoverConfig } from "./engines/failover.js";
import { loadWhisperConfig } from "./engines/whisper/config.js";
import { WhisperEngine } from "./engines/whisper/engine.js";
import { whisperModelParameters } from "./engines/whisper/model-dir.js";
import { WhisperWorkerError } from "./engines/whisper/worker.js";
import { FinalPassEngine, loadFinalPassConfig } from "./engines/whisper/final-pass.js";
import { RelayServer } from "./relay-server.js";
import { loadBesideGoogleSettings, loadRelayAuthSettings, loadServerSettings } from "./settings.js";
import { TranscriptForwarder } from "./transcripts.js";
import { lifecycle, runnerLog } from "./log.js";
import type { Log } from "./log.js";
import { withSpeechActivity } from "./speech-activity.js";
import { callOwnLanguage, googleLanguage, whisperLanguage } from "./call-language.js";
import type { LanguageOf } from "./call-language.js";
import type { Engine } from "./engines/engine.js";

function fatal(message: string): never {
  runnerLog({ minLevel: "warn" })("error", message);
  process.exit(2);
}

function settings<T>(what: string, load: () => T): T {
  try {
    return load();
  } catch (e) {
    if (e instanceof SettingError) fatal(`${what}: ${e.message}`);
    throw e;
  }
}

const serverSettings = settings("runner", () => loadServerSettings(process.env));

const log: Log = runnerLog({ minLevel: serverSettings.OZEN_LOG_LEVEL });

const { values } = parseArgs({
  options: {
    port: { type: "string", default: String(serverSettings.PORT) },
    host: { type: "string", default: serverSettings.HOST },
    engine: { type: "string", default: serverSettings.OZEN_ENGINE },
    "insecure-local": { type: "boolean", default: false },
  },
});

// before any engine starts: a runner that would take anyone's audio does not start by mistake
const relayAuth = settings("runner", () => loadRelayAuthSettings(process.env));
const insecureLocal = values["insecure-local"] === true || !relayAuth.OZEN_RELAY_AUTH;
if (!relayAuth.RELAY_SECRET && !insecureLocal) {
  fatal(
    "RELAY_SECRET is not set: the runner would take any client's audio for any call. Set RELAY_SECRET (the same " +
      "as the edge's), or for local development only start with --insecure-local (OZEN_RELAY_AUTH=off)",
  );
}
if (relayAuth.RELAY_SECRET && insecureLocal) {
  log("warn", "--insecure-local / OZEN_RELAY_AUTH=off ignored: RELAY_SECRET is set, relay credentials are checked");
}

/** Starts the worker; when it cannot start: stops the runner with its message, or (`optional`) says so and goes on without it. */
async function startWhisper(purpose: string, optional = false): Promise<WhisperEngine | undefined> {
  const config = settings("whisper engine", () => loadWhisperConfig(process.env));
  try {
    const { engine, ready } = await WhisperEngine.start(config, log);
    log("info", "whisper worker ready", { ...ready, purpose });
    return engine;
  } catch (e) {
    if (!(e instanceof WhisperWorkerError)) throw e;
    if (optional) {
      log("warn", "no whisper worker: Google runs without failover or final pass (OZEN_FALLBACK=auto)", {
        error: e.message,
      });
      return undefined;
    }
    const hint = purpose === "engine" ? "" : "; set OZEN_FALLBACK=none to run Google without it";
    fatal(`whisper engine (${purpose}): ${e.message}${hint}`);
  }
}

function googleEngine(): { google: GoogleEngine; languageOf: LanguageOf } {
  const config = settings("Google engine", () => loadGoogleConfig(process.env));
  if (!config.insecure) {
    const creds = findCredentials(process.env);
    if ("error" in creds) fatal(`Google engine: ${creds.error}`);
    log("info", "Google credentials", { source: creds.source });
  }
  return { google: new GoogleEngine(config, log), languageOf: googleLanguage(config) };
}

/** The engine, and the language it transcribes a call in (for `call.started`). */
interface ChosenEngine {
  readonly engine: Engine;
  readonly languageOf: LanguageOf;
}

async function whisperChoice(): Promise<ChosenEngine> {
  const engine = (await startWhisper("engine"))!;
  return { engine, languageOf: whisperLanguage(engine.config) };
}

async function makeEngine(name: string): Promise<ChosenEngine> {
  switch (name) {
    case "null":
      return { engine: nullEngine, languageOf: callOwnLanguage };
    case "whisper":
      return whisperChoice();
    case "auto": {
      // only the switch that decides; the rest of the Google settings are checked when Google is chosen
      const { GOOGLE_INSECURE } = GOOGLE_SETTINGS;
      const insecure = settings("Google engine", () => readSettings({ GOOGLE_INSECURE }, process.env)).GOOGLE_INSECURE;
      const creds = findCredentials(process.env);
      if (!insecure && "error" in creds) {
        log("warn", "no Google credentials: transcribing with the whisper worker", { engine: "whisper" });
        return whisperChoice();
      }
      return makeEngine("google");
    }
    case "google": {
      const { google, languageOf } = googleEngine();
      const beside = settings("runner", () => loadBesideGoogleSettings(process.env));
      const fallback = beside.OZEN_FALLBACK;
      if (fallback === "none") return { engine: google, languageOf };
      const failover = beside.OZEN_FAILOVER;
      const finalPass = beside.OZEN_FINAL_PASS;
      if (!failover && !finalPass) return { engine: google, languageOf };
      const failoverConfig = settings("failover", () => loadFailoverConfig(process.env));
      const finalPassConfig = settings("final pass", () => loadFinalPassConfig(process.env));
      const whisper = await startWhisper("failover and final pass", fallback === "auto");
      if (!whisper) return { engine: google, languageOf };
      let engine: Engine = failover ? new FailoverEngine(google, whisper, failoverConfig, Date.now, log) : google;
      if (finalPass) engine = new FinalPassEngine(engine, whisper, finalPassConfig);
      return { engine, languageOf };
    }
    default:
      return fatal(`unknown engine ${JSON.stringify(name)}; available: auto, google, whisper, null`);
  }
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fatal(`port ${JSON.stringify(values.port)} is not a TCP port`);
// speech.started / speech.ended for every engine (docs/agent-control.md)
const made = await makeEngine(values.engine);
const engine = withSpeechActivity(made.engine);
const languageOf = made.languageOf;
// how many calls this instance holds: OZEN_MAX_CALLS, else what the engine holds in real time on these cores
const whisperConfig = made.engine instanceof WhisperEngine ? made.engine.config : undefined;
const maxCalls =
  serverSettings.OZEN_MAX_CALLS ??
  defaultMaxCalls({
    engine: made.engine.name,
    whisperModel: whisperConfig?.model,
    // a model directory: its size, read from it (the worker resolves a relative one from its own directory)
    whisperModelParameters: whisperConfig
      ? whisperModelParameters(path.resolve(whisperConfig.workerDir, whisperConfig.model))
      : undefined,
    cpus: availableParallelism(),
  });
const server = new RelayServer({
  engine,
  maxCalls,
  port,
  host: values.host,
  log,
  ...(relayAuth.RELAY_SECRET ? { relaySecret: relayAuth.RELAY_SECRET } : { insecureLocal: true }),
  ...(relayAuth.RUNNER_METRICS_TOKEN ? { metricsToken: relayAuth.RUNNER_METRICS_TOKEN } : {}),
  relayBufferMs: relayAuth.RELAY_BUFFER_MS,
  engineGraceMs: serverSettings.OZEN_ENGINE_GRACE_MS,
  listenerFor: (start, send, clock) =>
    new TranscriptForwarder({
      start,
      engine: engine.nameFor?.(start) ?? engine.name,
      profile: engine.profile,
      language: languageOf(start),
      send,
      clock,
      observe: (e) => server.metrics.observeEvent(e),
    }),
});
const bound = await server.listen();
lifecycle("stt-runner listening", { port: bound, engine: engine.name, maxCalls });
// Cloud Run sends SIGTERM and allows 10 s: move every call to another instance, then exit
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.once(sig, () => {
    lifecycle("draining", { signal: sig, activeCalls: server.activeCalls });
    void server
      .drain(8000)
      .then(() => engine.close?.())
      .then(() => process.exit(0));
  });
}
