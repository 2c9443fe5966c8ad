/**
 * The runner's own settings (where it listens, which engine, what goes beside Google), and every
 * runner setting by area for docs/settings.md. Each setting is declared once, next to what reads it:
 * here, `engines/google/config.ts`,
 * `engines/whisper/config.ts`, `engines/failover.ts`, `engines/whisper/final-pass.ts`.
 */
import { readSettings, setting } from "@ozen/shared";
import type { SettingsDeployable, SettingsEnv, SettingsOf } from "@ozen/shared";
import { FAILOVER_SETTINGS } from "./engines/failover.js";
import { CREDENTIAL_SETTINGS, GOOGLE_SETTINGS } from "./engines/google/config.js";
import { WHISPER_SETTINGS } from "./engines/whisper/config.js";
import { FINAL_PASS_SETTINGS } from "./engines/whisper/final-pass.js";
import { DEFAULT_ENGINE_GRACE_MS, DEFAULT_RESUME_GRACE_MS } from "./relay-server.js";

export const ENGINES = ["auto", "google", "whisper", "null"] as const;
export type EngineName = (typeof ENGINES)[number];

export const SERVER_SETTINGS = {
  PORT: setting.int({
    description: "Listening port (Cloud Run sets it); `--port` overrides.",
    default: 8081,
    min: 0,
    max: 65_535,
  }),
  HOST: setting.string({
    description: "Listening address (`0.0.0.0` in the container); `--host` overrides.",
    default: "127.0.0.1",
  }),
  OZEN_ENGINE: setting.choice({
    description:
      "`auto`: `google` when Google credentials are found, else `whisper`; `google`: Google Speech-to-Text (the whisper " +
      "worker beside it, see `OZEN_FALLBACK`); `whisper`: the local worker alone (no cloud); `null`: takes audio, says nothing.",
    values: ENGINES,
    default: "auto",
  }),
  OZEN_MAX_CALLS: setting.int({
    description:
      "Calls one runner holds at most (each is one engine session, a detached one within its grace too); a new " +
      "call beyond it is refused (relay close 4007) and `/readyz` answers 503 while full. Cloud Run's concurrency " +
      "is the same number (infra/cloudrun/service.ts). Default from the engine and the instance's cores " +
      "(`defaultMaxCalls`, measured in docs/benchmarks.md): whisper `tiny`/`tiny.en` one call per core, other " +
      "whisper models one per two cores (at least 1), Google 50. Whether the model is tiny: for a CTranslate2 " +
      "directory (`WHISPER_MODEL`), its parameters, counted from its `model.bin` headers (at most 55 M, whatever " +
      "the directory is called or how it was quantized); for a name, or a directory whose `model.bin` cannot be " +
      "read that way, the name (`tiny`, `tiny.en`, or a path ending in them).",
    min: 1,
    max: 10_000,
    defaultText: "whisper: cores (tiny, tiny.en) or cores / 2 (others), at least 1; google: `50`",
  }),
  OZEN_ENGINE_GRACE_MS: setting.int({
    description:
      "How long a call whose relay socket dropped keeps its engine session, ms, waiting for its edge to come back " +
      "(the edge's first redials come 100, 200, 400 ms after a drop); then the session says its last and is " +
      "parked: its words are kept for the call's 60 s resume grace and a new session opens if the edge returns. " +
      "An edge that went to another instance cannot say so, so this bounds how long an orphaned session (and " +
      "its place in `OZEN_MAX_CALLS`) lives here. `0` parks at once: every blip opens a new session.",
    default: DEFAULT_ENGINE_GRACE_MS,
    min: 0,
    max: DEFAULT_RESUME_GRACE_MS,
  }),
  OZEN_LOG_LEVEL: setting.choice({
    description: "`info` adds info lines (never transcript text).",
    values: ["warn", "info"],
    default: "warn",
  }),
} as const;

/** Who may use the runner: the relay's credential check and the bearer token of its stats. */
export const RELAY_AUTH_SETTINGS = {
  RELAY_SECRET: setting.secret({
    description:
      "The relay's shared secret with the edge (the edge's `RELAY_SECRET`): every relay upgrade must carry a " +
      "credential signed with it for the one call it starts (docs/security.md). The runner refuses to start " +
      "without it unless `OZEN_RELAY_AUTH=off`.",
    minLength: 16,
    defaultText: "(required unless `OZEN_RELAY_AUTH=off`)",
  }),
  OZEN_RELAY_AUTH: setting.bool({
    description:
      "`off` (or `--insecure-local`) takes relay sockets with no credential, for any call: local development " +
      "only, logged loudly at start. Ignored when `RELAY_SECRET` is set.",
    default: true,
  }),
  RUNNER_METRICS_TOKEN: setting.secret({
    description:
      "Bearer token for `/stats` and `/metrics` (`/healthz` and `/readyz` stay open); unset: they answer 401 to everyone.",
    minLength: 16,
  }),
  RELAY_BUFFER_MS: setting.int({
    description:
      "The edge's `RELAY_BUFFER_MS` (or more): a block's seq may jump at most this much audio past the next " +
      "expected one (beyond: closed 4003), and a call may be fed at most this much audio ahead of real time " +
      "(beyond: its blocks wait and its socket is read at real time; past 5 s waiting, closed 4005); the edge " +
      "reconnects and replays.",
    default: 120_000,
    min: 1000,
    max: 600_000,
  }),
} as const;

/** What runs beside Google: the whisper worker as failover and final pass. */
export const BESIDE_GOOGLE_SETTINGS = {
  OZEN_FALLBACK: setting.choice({
    description:
      "The whisper worker beside Google: `auto` starts it (when it cannot, warns and runs Google alone); `whisper` " +
      "requires it (the runner stops with the worker's message); `none` runs Google alone.",
    values: ["auto", "whisper", "none"],
    default: "auto",
  }),
  OZEN_FAILOVER: setting.bool({
    description: "`off`: a call Google gives up on goes on without transcripts instead of moving to whisper.",
    default: true,
  }),
  OZEN_FINAL_PASS: setting.bool({
    description: "Each Google final is decoded again by whisper (beam 5) over the same audio and both texts go out.",
    default: true,
  }),
} as const;

export type ServerSettings = SettingsOf<typeof SERVER_SETTINGS>;
export type RelayAuthSettings = SettingsOf<typeof RELAY_AUTH_SETTINGS>;
export type BesideGoogleSettings = SettingsOf<typeof BESIDE_GOOGLE_SETTINGS>;

/** The runner's listening and engine settings; throws `SettingError`. */
export function loadServerSettings(env: SettingsEnv): ServerSettings {
  return readSettings(SERVER_SETTINGS, env);
}

/** The relay's credential check and the stats' token; throws `SettingError`. */
export function loadRelayAuthSettings(env: SettingsEnv): RelayAuthSettings {
  return readSettings(RELAY_AUTH_SETTINGS, env);
}

/** Whether the whisper worker runs beside Google, and as what; throws `SettingError`. */
export function loadBesideGoogleSettings(env: SettingsEnv): BesideGoogleSettings {
  return readSettings(BESIDE_GOOGLE_SETTINGS, env);
}

/** Every runner setting by area, for docs/settings.md. */
export const RUNNER_SETTINGS: SettingsDeployable = {
  title: "Runner",
  intro:
    "The stt-runner (`stt-runner/`, a container on Cloud Run): the process's environment. Read and checked at " +
    "start; a wrong value stops the runner with a message naming it.",
  areas: [
    { title: "Server and engine", settings: SERVER_SETTINGS },
    {
      title: "Relay authentication and limits",
      intro:
        "Who may speak for a call, and how much one call may send (docs/security.md). `--insecure-local` on the " +
        "command line is `OZEN_RELAY_AUTH=off`.",
      settings: RELAY_AUTH_SETTINGS,
    },
    { title: "Google engine", settings: GOOGLE_SETTINGS },
    {
      title: "Google credentials",
      intro: "Application Default Credentials, found the Google way; the runner refuses to start without any.",
      settings: CREDENTIAL_SETTINGS,
    },
    {
      title: "Whisper beside Google",
      intro: "With `OZEN_ENGINE=google` (or `auto` that chose Google).",
      settings: BESIDE_GOOGLE_SETTINGS,
    },
    { title: "Failover and circuit breaker", settings: FAILOVER_SETTINGS },
    { title: "Final pass", settings: FINAL_PASS_SETTINGS },
    { title: "Whisper worker", settings: WHISPER_SETTINGS },
  ],
};
