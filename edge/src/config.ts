/**
 * The edge's settings, read once per isolate from the Worker's environment (wrangler `[vars]`
 * and secrets) and validated. Every setting is in the README table with its default.
 */
import type { StreamMode } from "@ozen/shared";
import { loadDeliveryConfig } from "./records/delivery-config.js";
import type { DeliveryConfig } from "./records/delivery-config.js";
import { loadSubscriptionConfig } from "./events/subscription-config.js";
import type { SubscriptionConfig } from "./events/subscription-config.js";

export interface EdgeConfig {
  /** `https://host` Twilio reaches; webhook and `wss://` stream URLs are built (and signed) from it. */
  readonly publicBaseUrl: string;
  /** Twilio's primary auth token: signs webhooks and the stream upgrade. */
  readonly twilioAuthToken: string;
  /** Off only for local development; every call then logs a warning. */
  readonly verifySignatures: boolean;
  /** Secret for the per-call `<Parameter name="ozen_token">`; the auth token when unset. */
  readonly callTokenSecret: string;
  readonly streamMode: StreamMode;
  /** The runner's relay endpoint, `ws(s)://host:port/path`. */
  readonly runnerUrl: string;
  /** PCM block sent to the runner, 20..250 ms. */
  readonly blockMs: number;
  /** Audio kept until the runner acknowledges it (replayed on reconnect), in ms. */
  readonly relayBufferMs: number;
  readonly relayBackoffMinMs: number;
  readonly relayBackoffMaxMs: number;
  /** `asset`: the bundled greeting plays on `start` (bidirectional streams only); `none`: silence. */
  readonly greeting: "asset" | "none";
  /** Bearer token for the HTTP API (`/calls/...`, `/stats`); the API answers 503 without one. */
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

export type EdgeEnv = Record<string, unknown>;

export class ConfigError extends Error {}

function str(env: EdgeEnv, key: string, fallback?: string): string {
  const v = env[key];
  if (v === undefined || v === "") {
    if (fallback === undefined) throw new ConfigError(`${key} is not set`);
    return fallback;
  }
  if (typeof v !== "string") throw new ConfigError(`${key} must be a string`);
  return v;
}

function int(env: EdgeEnv, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  const v = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${key} is ${JSON.stringify(raw)}, expected a whole number from ${min} to ${max}`);
  }
  return v;
}

function oneOf<T extends string>(env: EdgeEnv, key: string, fallback: T, allowed: readonly T[]): T {
  const v = str(env, key, fallback);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`${key} is ${JSON.stringify(v)}, expected one of ${allowed.join(", ")}`);
  }
  return v as T;
}

export function loadConfig(env: EdgeEnv): EdgeConfig {
  const publicBaseUrl = str(env, "PUBLIC_BASE_URL").replace(/\/+$/, "");
  if (!/^https?:\/\/[^/?#]+$/.test(publicBaseUrl)) {
    throw new ConfigError(
      `PUBLIC_BASE_URL is ${JSON.stringify(publicBaseUrl)}, expected https://host[:port] with no path`,
    );
  }
  const runnerUrl = str(env, "RUNNER_URL");
  if (!/^(wss?|https?):\/\//.test(runnerUrl)) {
    throw new ConfigError(`RUNNER_URL is ${JSON.stringify(runnerUrl)}, expected ws://, wss://, http:// or https://`);
  }
  const verifySignatures = oneOf(env, "TWILIO_SIGNATURE", "on", ["on", "off"]) === "on";
  const twilioAuthToken = str(env, "TWILIO_AUTH_TOKEN", verifySignatures ? undefined : "");
  const backoffMin = int(env, "RELAY_BACKOFF_MIN_MS", 100, 10, 60_000);
  return {
    publicBaseUrl,
    twilioAuthToken,
    verifySignatures,
    callTokenSecret: str(env, "CALL_TOKEN_SECRET", twilioAuthToken || "ozen-dev"),
    streamMode: oneOf(env, "STREAM_MODE", "connect", ["connect", "start"]),
    runnerUrl,
    blockMs: int(env, "BLOCK_MS", 100, 20, 250),
    relayBufferMs: int(env, "RELAY_BUFFER_MS", 120_000, 1000, 600_000),
    relayBackoffMinMs: backoffMin,
    relayBackoffMaxMs: int(env, "RELAY_BACKOFF_MAX_MS", 5000, backoffMin, 300_000),
    greeting: oneOf(env, "GREETING", "asset", ["asset", "none"]),
    apiToken: str(env, "API_TOKEN", ""),
    ingestAck: oneOf(env, "INGEST_ACK", "off", ["off", "block"]),
    benchNaive: oneOf(env, "BENCH_NAIVE", "off", ["on", "off"]) === "on",
    subscriptions: loadSubscriptionConfig(
      {
        str: (key, fallback) => str(env, key, fallback),
        int: (key, fallback, min, max) => int(env, key, fallback, min, max),
      },
      str(env, "API_TOKEN", ""),
    ),
    delivery: loadDeliveryConfig({
      str: (key, fallback) => str(env, key, fallback),
      int: (key, fallback, min, max) => int(env, key, fallback, min, max),
      fail: (message) => {
        throw new ConfigError(message);
      },
    }),
  };
}

let cached: { env: EdgeEnv; config: EdgeConfig } | undefined;

/** The config for this isolate's env, parsed once. Throws `ConfigError` when it is invalid. */
export function configFor(env: EdgeEnv): EdgeConfig {
  if (cached?.env !== env) cached = { env, config: loadConfig(env) };
  return cached.config;
}

/** The `wss://` (or `ws://` for a local http base) URL Twilio connects to for a call. */
export function streamUrl(config: EdgeConfig, callSid: string, path = "/twilio/stream/"): string {
  return config.publicBaseUrl.replace(/^http/, "ws") + path + encodeURIComponent(callSid);
}
