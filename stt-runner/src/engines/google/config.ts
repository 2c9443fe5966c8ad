/**
 * Settings of the Google engine, read once from the environment and validated. Every setting
 * is in the README table with its default.
 */

export type GoogleApi = "v1" | "v2";
export type GoogleEncoding = "LINEAR16" | "MULAW";

export interface GoogleConfig {
  readonly api: GoogleApi;
  /** he-IL for v1, iw-IL for v2 by default; both are accepted. */
  readonly languageCode: string;
  /** Tried in order; the engine moves down when Google says a model is not supported. "" = Google's default. */
  readonly models: readonly string[];
  /** fast: punctuation off (the live profile); accurate: punctuation on. */
  readonly profile: "fast" | "accurate";
  readonly encoding: GoogleEncoding;
  readonly phrases: readonly string[];
  readonly phraseBoost: number;
  /** v2 only. */
  readonly project: string;
  readonly location: string;
  /** host[:port]; by default the global or regional Google endpoint. */
  readonly endpoint: string;
  /** Plaintext gRPC with no credentials: only for the local fake in tests. */
  readonly insecure: boolean;
  /** Roll over to a new stream at the next final after this much stream audio, s. */
  readonly restartAfterS: number;
  /** Roll over regardless at this much stream audio (Google's limit is 305 s), s. */
  readonly maxStreamS: number;
  /** Consecutive failed streams before the call is handed to a fallback. */
  readonly retryBudget: number;
  /** Send silence when the call's audio stalls this long, so Google's audio timeout never trips, ms. */
  readonly keepaliveAfterMs: number;
  /** How long to wait for a half-closed stream's last results, ms. */
  readonly drainTimeoutMs: number;
}

export class GoogleConfigError extends Error {}

type Env = Readonly<Record<string, string | undefined>>;

function pick<T extends string>(env: Env, key: string, fallback: T, allowed: readonly T[]): T {
  const v = env[key] || fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new GoogleConfigError(`${key} is ${JSON.stringify(v)}, expected one of ${allowed.join(", ")}`);
  }
  return v as T;
}

function num(env: Env, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  const v = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new GoogleConfigError(`${key} is ${JSON.stringify(raw)}, expected a number from ${min} to ${max}`);
  }
  return v;
}

function list(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(/[,|]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export const DEFAULT_MODELS: Record<GoogleApi, readonly string[]> = {
  v1: ["telephony", "phone_call", "latest_long", ""],
  v2: ["telephony", "chirp_3", "long"],
};

export function loadGoogleConfig(env: Env): GoogleConfig {
  const api = pick(env, "GOOGLE_API", "v1", ["v1", "v2"]);
  const languageCode = env["GOOGLE_LANGUAGE"] || (api === "v1" ? "he-IL" : "iw-IL");
  if (!/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(languageCode)) {
    throw new GoogleConfigError(`GOOGLE_LANGUAGE is ${JSON.stringify(languageCode)}, expected a BCP-47 tag like he-IL`);
  }
  const models =
    env["GOOGLE_MODELS"] !== undefined ? env["GOOGLE_MODELS"].split(",").map((m) => m.trim()) : DEFAULT_MODELS[api];
  const project = env["GOOGLE_PROJECT"] ?? env["GOOGLE_CLOUD_PROJECT"] ?? "";
  if (api === "v2" && !project)
    throw new GoogleConfigError("GOOGLE_PROJECT is required for the v2 API (the recognizer is projects/{p}/...)");
  const location = env["GOOGLE_LOCATION"] || "global";
  const restartAfterS = num(env, "GOOGLE_RESTART_AFTER_S", 240, 1, 300);
  return {
    api,
    languageCode,
    models,
    profile: pick(env, "GOOGLE_PROFILE", "fast", ["fast", "accurate"]),
    encoding: pick(env, "GOOGLE_ENCODING", "LINEAR16", ["LINEAR16", "MULAW"]),
    phrases: list(env["GOOGLE_PHRASES"]),
    phraseBoost: num(env, "GOOGLE_PHRASE_BOOST", 10, 0, 20),
    project,
    location,
    endpoint:
      env["GOOGLE_ENDPOINT"] || (location === "global" ? "speech.googleapis.com" : `${location}-speech.googleapis.com`),
    insecure: env["GOOGLE_INSECURE"] === "true",
    restartAfterS,
    maxStreamS: num(env, "GOOGLE_MAX_STREAM_S", 290, restartAfterS, 300),
    retryBudget: num(env, "GOOGLE_RETRY_BUDGET", 5, 0, 100),
    keepaliveAfterMs: num(env, "GOOGLE_KEEPALIVE_MS", 1000, 100, 8000),
    drainTimeoutMs: num(env, "GOOGLE_DRAIN_TIMEOUT_MS", 5000, 100, 60_000),
  };
}

/** Whether Google punctuates automatically: only in the accurate profile (playbook B). */
export function punctuates(config: Pick<GoogleConfig, "profile">): boolean {
  return config.profile === "accurate";
}

/** Phrase hints of one call: the configured ones plus the call's `<Parameter name="ozen_phrases">`. */
export function callPhrases(config: GoogleConfig, customParameters: Readonly<Record<string, string>>): string[] {
  return [...new Set([...config.phrases, ...list(customParameters["ozen_phrases"])])].slice(0, 5000);
}
