/**
 * The edge's settings, read once per isolate from the Worker's environment (wrangler `[vars]`
 * and secrets) and validated. Each is declared once below (or in `delivery-config.ts`,
 * `subscription-config.ts`); docs/settings.md is generated from the declarations.
 */
import { SettingError, readSettings, setting } from "@ozen/shared";
import type { SettingsDeployable, SettingsEnv, StreamMode } from "@ozen/shared";
import { DELIVERY_RECORDS_SETTINGS, DELIVERY_WEBHOOK_SETTINGS, loadDeliveryConfig } from "./records/delivery-config.js";
import type { DeliveryConfig } from "./records/delivery-config.js";
import { SUBSCRIPTION_SETTINGS, loadSubscriptionConfig } from "./events/subscription-config.js";
import type { SubscriptionConfig } from "./events/subscription-config.js";
import { RUNNER_AUTH_SETTINGS, loadRunnerAuth } from "./call/runner-auth.js";
import type { RunnerAuthConfig } from "./call/runner-auth.js";
import { VOICE_SETTINGS, loadVoiceConfig } from "./call/voice-config.js";
import { PHRASE_SETTINGS, loadPhraseHints } from "./call/phrase-config.js";
import type { PhraseHintsConfig } from "./call/phrase-config.js";
import type { VoiceConfig } from "./call/voice-config.js";

export interface EdgeConfig {
  /** `https://host` Twilio reaches; webhook and `wss://` stream URLs are built (and signed) from it. */
  readonly publicBaseUrl: string;
  /** Twilio's primary auth token: signs webhooks and the stream upgrade. */
  readonly twilioAuthToken: string;
  /** Off only for local development; every call then logs a warning. */
  readonly verifySignatures: boolean;
  /** Secret for the per-call `<Parameter name="ozen_token">`; the auth token when unset. */
  readonly callTokenSecret: string;
  /** How long a minted `ozen_token` is accepted, ms (Twilio opens the stream right after the TwiML). */
  readonly callTokenTtlMs: number;
  readonly streamMode: StreamMode;
  /** The runner's relay endpoint, `ws(s)://host:port/path`. */
  readonly runnerUrl: string;
  /**
   * Signs each relay upgrade for its one call (`X-Ozen-Relay-Credential`); the runner's
   * RELAY_SECRET. Empty: the upgrade carries none (only a runner with OZEN_RELAY_AUTH=off takes it).
   */
  readonly relaySecret: string;
  /** PCM block sent to the runner, 20..250 ms. */
  readonly blockMs: number;
  /** Audio kept until the runner acknowledges it (replayed on reconnect), in ms. */
  readonly relayBufferMs: number;
  readonly relayBackoffMinMs: number;
  readonly relayBackoffMaxMs: number;
  /** What the relay upgrade carries for the runner's platform (`runner-auth.ts`). */
  readonly runnerAuth: RunnerAuthConfig;
  /** `asset`: the bundled greeting plays on `start` (bidirectional streams only); `agent`: the agent speaks first; `none`: silence. */
  readonly greeting: "asset" | "agent" | "none";
  /** Phrase hints per account and per called number (`phrase-config.ts`). */
  readonly phrases: PhraseHintsConfig;
  /** The agent's voice: barge-in, pacing, the queue (`voice-config.ts`). */
  readonly voice: VoiceConfig;
  /** Bearer token for the HTTP API and the event streams; they answer 503 without one. */
  readonly apiToken: string;
  /** `block`: the edge sends Twilio a `mark` named `ozen-ack:{sequenceNumber}` per block (benchmarks). */
  readonly ingestAck: "off" | "block";
  /** Exposes `/twilio/stream-naive/{CallSid}`, the benchmark's naive handler. */
  readonly benchNaive: boolean;
  /** D1 records and webhooks (`delivery-config.ts`). */
  readonly delivery: DeliveryConfig;
  /** Agent event streams: flow-control bounds, tokens (`subscription-config.ts`). */
  readonly subscriptions: SubscriptionConfig;
}

export type EdgeEnv = SettingsEnv;

/** Twilio's side of a call: where it connects, how its requests are verified, what it is told. */
export const TWILIO_SETTINGS = {
  PUBLIC_BASE_URL: setting.url({
    description: "The `https://host` Twilio reaches; webhook and `wss://` stream URLs are built and signed from it.",
    required: true,
    schemes: ["https", "http"],
    originOnly: true,
  }),
  TWILIO_SIGNATURE: setting.bool({
    description: "`off` skips signature and call-token checks (local development only; every call logs a warning).",
    default: true,
  }),
  TWILIO_AUTH_TOKEN: setting.secret({
    description: "Twilio's primary auth token, for `X-Twilio-Signature`.",
    defaultText: "(required unless `TWILIO_SIGNATURE=off`)",
  }),
  CALL_TOKEN_SECRET: setting.secret({
    description: "Secret for the per-call `ozen_token` parameter (format: docs/security.md).",
    defaultText: "`TWILIO_AUTH_TOKEN`",
  }),
  CALL_TOKEN_TTL_S: setting.int({
    description:
      "How long an `ozen_token` the voice webhook mints is accepted, s (Twilio opens the stream right after the TwiML).",
    default: 300,
    min: 10,
    max: 3600,
  }),
  STREAM_MODE: setting.choice({
    description:
      "`connect`: bidirectional `<Connect><Stream>` (greeting, marks, barge-in); `start`: receive-only fork.",
    values: ["connect", "start"],
    default: "connect",
  }),
  GREETING: setting.choice({
    description:
      "`asset` plays `edge/assets/greeting.ulaw` on `start`; `agent` leaves the first words to the agent (it plays on `call.started`); `none` plays nothing.",
    values: ["asset", "agent", "none"],
    default: "asset",
  }),
} as const;

/** The call path from Twilio's frames to the runner. */
export const RELAY_SETTINGS = {
  RUNNER_URL: setting.url({
    description: "The runner's relay endpoint, `ws(s)://host:port/path`.",
    required: true,
    schemes: ["ws", "wss", "http", "https"],
  }),
  RELAY_SECRET: setting.secret({
    description:
      "Shared with the runner (its `RELAY_SECRET`): each relay (re)connect carries a fresh credential for its one " +
      "call, signed with it (docs/security.md). Unset: none is sent, and only a runner started with " +
      "`--insecure-local` takes the call (every call logs a warning).",
    minLength: 16,
  }),
  BLOCK_MS: setting.int({ description: "PCM block sent to the runner, ms.", default: 100, min: 20, max: 250 }),
  RELAY_BUFFER_MS: setting.int({
    description:
      "Audio kept until the runner acknowledges it (replayed on reconnect), ms; past it the oldest is dropped (an error).",
    default: 120_000,
    min: 1000,
    max: 600_000,
  }),
  RELAY_BACKOFF_MIN_MS: setting.int({
    description: "First reconnect delay to the runner, ms (doubling).",
    default: 100,
    min: 10,
    max: 60_000,
  }),
  RELAY_BACKOFF_MAX_MS: setting.int({
    description: "Longest reconnect delay to the runner, ms.",
    default: 5000,
    min: { setting: "RELAY_BACKOFF_MIN_MS" },
    max: 300_000,
  }),
} as const;

/** What only benchmarks and the simulator turn on. */
export const BENCH_SETTINGS = {
  INGEST_ACK: setting.choice({
    description: "`block`: a `mark` named `ozen-ack:{sequenceNumber}` per block (benchmarks; not for real Twilio).",
    values: ["off", "block"],
    default: "off",
  }),
  BENCH_NAIVE: setting.bool({
    description: "`on` exposes `/twilio/stream-naive/{CallSid}`, the benchmark's naive handler.",
    default: false,
  }),
} as const;

/** Every edge setting by area, for docs/settings.md. */
export const EDGE_SETTINGS: SettingsDeployable = {
  title: "Edge",
  intro:
    "The Cloudflare Worker (`edge/`): wrangler `[vars]`, secrets with `wrangler secret put` (or `.dev.vars` " +
    "locally). Read and checked once per isolate; a wrong value answers every request 500 naming it.",
  areas: [
    { title: "Twilio", settings: TWILIO_SETTINGS },
    {
      title: "Phrase hints",
      intro:
        "Names and words the recognizer should expect, per account and per called number; a call adds its own " +
        "with `ozen_phrases` (docs/api.md). The runner's `GOOGLE_PHRASES` and `WHISPER_HINTS` apply to every call.",
      settings: PHRASE_SETTINGS,
    },
    { title: "Relay to the runner", settings: RELAY_SETTINGS },
    {
      title: "The runner's platform (Cloud Run IAM)",
      intro:
        "A private Cloud Run runner answers 403 to a request without a Google ID token of an invoker; " +
        "docs/deploy.md sets up the service account.",
      settings: RUNNER_AUTH_SETTINGS,
    },
    {
      title: "API and agent event streams",
      intro: "`API_TOKEN` opens the call API, the records API and the event streams; without it they answer 503.",
      settings: SUBSCRIPTION_SETTINGS,
    },
    { title: "The agent's voice", intro: "`docs/agent-control.md`.", settings: VOICE_SETTINGS },
    { title: "Records (D1)", settings: DELIVERY_RECORDS_SETTINGS },
    { title: "Webhooks", settings: DELIVERY_WEBHOOK_SETTINGS },
    { title: "Benchmarks", settings: BENCH_SETTINGS },
  ],
};

export function loadConfig(env: EdgeEnv): EdgeConfig {
  const twilio = readSettings(TWILIO_SETTINGS, env);
  const relay = readSettings(RELAY_SETTINGS, env);
  const bench = readSettings(BENCH_SETTINGS, env);
  const twilioAuthToken = twilio.TWILIO_AUTH_TOKEN ?? "";
  if (twilio.TWILIO_SIGNATURE && !twilioAuthToken) {
    throw new SettingError({
      setting: "TWILIO_AUTH_TOKEN",
      value: undefined,
      expected: "Twilio's auth token (or TWILIO_SIGNATURE=off for local development)",
    });
  }
  const subscriptions = loadSubscriptionConfig(env);
  return {
    publicBaseUrl: twilio.PUBLIC_BASE_URL,
    twilioAuthToken,
    verifySignatures: twilio.TWILIO_SIGNATURE,
    callTokenSecret: twilio.CALL_TOKEN_SECRET ?? (twilioAuthToken || "ozen-dev"),
    callTokenTtlMs: twilio.CALL_TOKEN_TTL_S * 1000,
    streamMode: twilio.STREAM_MODE,
    runnerUrl: relay.RUNNER_URL,
    relaySecret: relay.RELAY_SECRET ?? "",
    blockMs: relay.BLOCK_MS,
    relayBufferMs: relay.RELAY_BUFFER_MS,
    relayBackoffMinMs: relay.RELAY_BACKOFF_MIN_MS,
    relayBackoffMaxMs: relay.RELAY_BACKOFF_MAX_MS,
    runnerAuth: loadRunnerAuth(env, relay.RUNNER_URL),
    greeting: twilio.GREETING,
    apiToken: subscriptions.apiToken,
    ingestAck: bench.INGEST_ACK,
    benchNaive: bench.BENCH_NAIVE,
    subscriptions,
    voice: loadVoiceConfig(env),
    phrases: loadPhraseHints(env),
    delivery: loadDeliveryConfig(env),
  };
}

let cached: { env: EdgeEnv; config: EdgeConfig } | undefined;

/** The config for this isolate's env, parsed once. Throws `SettingError` when it is invalid. */
export function configFor(env: EdgeEnv): EdgeConfig {
  if (cached?.env !== env) cached = { env, config: loadConfig(env) };
  return cached.config;
}

/** The `wss://` (or `ws://` for a local http base) URL Twilio connects to for a call. */
export function streamUrl(config: EdgeConfig, callSid: string, path = "/twilio/stream/"): string {
  return config.publicBaseUrl.replace(/^http/, "ws") + path + encodeURIComponent(callSid);
}
