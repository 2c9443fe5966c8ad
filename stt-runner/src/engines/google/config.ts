/**
 * Settings of the Google engine, read once from the environment and validated; each is declared
 * once in `GOOGLE_SETTINGS` (docs/settings.md is generated from it).
 */
import { SettingError, mergePhrases, readSettings, setting } from "@ozen/shared";
import type { RelayStart, SettingsEnv } from "@ozen/shared";
import { callOwnPhraseList, configuredPhrases } from "../../call-phrases.js";

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

export const DEFAULT_MODELS: Record<GoogleApi, readonly string[]> = {
  v1: ["telephony", "phone_call", "latest_long", ""],
  v2: ["telephony", "chirp_3", "long"],
};

/** Phrase hints: Google's, and the whisper worker's unless `WHISPER_HINTS` is set. */
export const PHRASES_SETTING = setting.list({
  description:
    "Phrase hints for every call, comma-separated; a call adds its account's, its number's and its own `ozen_phrases` " +
    "(docs/api.md). Each phrase is checked at start by a call's rules: at most 100 characters, no control character.",
  separator: "comma-or-bar",
  default: [],
});

export const GOOGLE_SETTINGS = {
  GOOGLE_API: setting.choice({ description: "`v1` or `v2` StreamingRecognize.", values: ["v1", "v2"], default: "v1" }),
  GOOGLE_LANGUAGE: setting.string({
    description: "BCP-47 code; both Hebrew spellings are accepted (see `docs/google-hebrew.md`).",
    pattern: /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/,
    expected: "a BCP-47 tag like he-IL",
    defaultText: "`he-IL` (v1), `iw-IL` (v2)",
  }),
  GOOGLE_MODELS: setting.list({
    description:
      "Model chain, tried in order when Google says a model is not supported; an empty entry is Google's default.",
    keepEmptyItems: true,
    emptyIsValue: true,
    defaultText: "v1 `telephony,phone_call,latest_long,`; v2 `telephony,chirp_3,long`",
  }),
  GOOGLE_PROFILE: setting.choice({
    description: "`fast`: automatic punctuation off (finals are polished by ozen); `accurate`: on.",
    values: ["fast", "accurate"],
    default: "fast",
  }),
  GOOGLE_ENCODING: setting.choice({
    description: "`LINEAR16` (the edge's PCM) or `MULAW` (re-encoded by table: Twilio's exact bytes, half the size).",
    values: ["LINEAR16", "MULAW"],
    default: "LINEAR16",
  }),
  GOOGLE_PHRASES: PHRASES_SETTING,
  GOOGLE_PHRASE_BOOST: setting.number({ description: "Boost of the phrase hints.", default: 10, min: 0, max: 20 }),
  GOOGLE_PROJECT: setting.string({
    description: "v2 recognizer `projects/{p}/locations/{loc}/recognizers/_`.",
    defaultText: "`GOOGLE_CLOUD_PROJECT` (required for v2)",
  }),
  GOOGLE_CLOUD_PROJECT: setting.string({
    description: "The project when `GOOGLE_PROJECT` is unset (Google's own name).",
  }),
  GOOGLE_LOCATION: setting.string({
    description: "v2 recognizer location; a regional location uses its regional endpoint.",
    default: "global",
  }),
  GOOGLE_ENDPOINT: setting.string({
    description: "gRPC endpoint `host[:port]`.",
    defaultText: "`speech.googleapis.com` or `{loc}-speech.googleapis.com`",
  }),
  GOOGLE_INSECURE: setting.bool({
    description: "`true`: plaintext, no credentials (the local fake in tests only).",
    default: false,
    words: ["true", "false"],
  }),
  GOOGLE_RESTART_AFTER_S: setting.number({
    description: "Roll over to a new stream at the first final after this much stream audio, s.",
    default: 240,
    min: 1,
    max: 300,
  }),
  GOOGLE_MAX_STREAM_S: setting.number({
    description: "Roll over regardless at this much stream audio, s (Google stops at 305 s).",
    default: 290,
    min: { setting: "GOOGLE_RESTART_AFTER_S" },
    max: 300,
  }),
  GOOGLE_RETRY_BUDGET: setting.number({
    description: "Consecutive failed streams (UNAVAILABLE, DEADLINE_EXCEEDED, ...) before the call is handed over.",
    default: 5,
    min: 0,
    max: 100,
  }),
  GOOGLE_KEEPALIVE_MS: setting.number({
    description: "Send silence when the call's audio stalls this long, ms, so Google's audio timeout never trips.",
    default: 1000,
    min: 100,
    max: 8000,
  }),
  GOOGLE_DRAIN_TIMEOUT_MS: setting.number({
    description: "How long a half-closed stream may take to deliver its last results, ms.",
    default: 5000,
    min: 100,
    max: 60_000,
  }),
} as const;

/** Where Google's Application Default Credentials come from (`findCredentials` in engine.ts). */
export const CREDENTIAL_SETTINGS = {
  GOOGLE_APPLICATION_CREDENTIALS: setting.string({
    description: "A service account key file (the Google way).",
    defaultText: "(ADC: gcloud's, or the metadata server's)",
  }),
  CLOUDSDK_CONFIG: setting.string({
    description: "gcloud's configuration directory, where `gcloud auth application-default login` writes.",
    defaultText: "`~/.config/gcloud`",
  }),
  K_SERVICE: setting.string({
    description: "Set by Cloud Run: credentials come from its metadata server.",
  }),
  GCE_METADATA_HOST: setting.string({
    description: "Set where a GCE metadata server provides credentials.",
  }),
} as const;

/** Reads and checks the Google engine's settings; throws `SettingError`. */
export function loadGoogleConfig(env: SettingsEnv): GoogleConfig {
  const s = readSettings(GOOGLE_SETTINGS, env);
  const api = s.GOOGLE_API;
  const project = s.GOOGLE_PROJECT ?? s.GOOGLE_CLOUD_PROJECT ?? "";
  if (api === "v2" && !project) {
    throw new SettingError({
      setting: "GOOGLE_PROJECT",
      value: undefined,
      expected: "a project for the v2 API (the recognizer is projects/{p}/...)",
    });
  }
  const location = s.GOOGLE_LOCATION;
  return {
    api,
    languageCode: s.GOOGLE_LANGUAGE ?? (api === "v1" ? "he-IL" : "iw-IL"),
    models: s.GOOGLE_MODELS ?? DEFAULT_MODELS[api],
    profile: s.GOOGLE_PROFILE,
    encoding: s.GOOGLE_ENCODING,
    phrases: configuredPhrases("GOOGLE_PHRASES", s.GOOGLE_PHRASES),
    phraseBoost: s.GOOGLE_PHRASE_BOOST,
    project,
    location,
    endpoint:
      s.GOOGLE_ENDPOINT ?? (location === "global" ? "speech.googleapis.com" : `${location}-speech.googleapis.com`),
    insecure: s.GOOGLE_INSECURE,
    restartAfterS: s.GOOGLE_RESTART_AFTER_S,
    maxStreamS: s.GOOGLE_MAX_STREAM_S,
    retryBudget: s.GOOGLE_RETRY_BUDGET,
    keepaliveAfterMs: s.GOOGLE_KEEPALIVE_MS,
    drainTimeoutMs: s.GOOGLE_DRAIN_TIMEOUT_MS,
  };
}

/** Whether Google punctuates automatically: only in the accurate profile (playbook B). */
export function punctuates(config: Pick<GoogleConfig, "profile">): boolean {
  return config.profile === "accurate";
}

/** Phrase hints of one call: the configured ones, then the call's own (`call-phrases.ts`), each once. */
export function callPhrases(config: GoogleConfig, start: Pick<RelayStart, "phrases" | "customParameters">): string[] {
  return mergePhrases([config.phrases, callOwnPhraseList(start)], 5000);
}
