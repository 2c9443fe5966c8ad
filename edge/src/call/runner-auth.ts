/**
 * How the edge proves itself to the runner's platform on the relay upgrade (adapter).
 * `RUNNER_AUTH=google-id-token`: the runner is a private Cloud Run service (only the edge's
 * service account has `roles/run.invoker`), so every upgrade carries
 * `Authorization: Bearer <Google ID token>` for the runner's origin, minted from the service
 * account's JSON key (`RUNNER_SA_KEY`, a secret). The assertion, the answer and the cache policy
 * are the shared core's (`shared/src/auth/google-id-token.ts`); this module owns the fetch and
 * the clock, and one cache per isolate that every call in it shares (one fetch in flight,
 * refreshed ahead of expiry).
 */
import {
  IdTokenCache,
  SettingError,
  idTokenRequestBody,
  importSigningKey,
  parseIdTokenAnswer,
  parseServiceAccountKey,
  readSettings,
  setting,
  signIdTokenAssertion,
} from "@ozen/shared";
import type { ServiceAccountKey, SettingsEnv, SigningKey } from "@ozen/shared";

export type RunnerAuthConfig =
  | { readonly kind: "none" }
  | { readonly kind: "google-id-token"; readonly key: ServiceAccountKey; readonly audience: string };

export const RUNNER_AUTH_SETTINGS = {
  RUNNER_AUTH: setting.choice({
    description:
      "`google-id-token`: every relay upgrade carries a Google ID token for the runner (a private Cloud Run " +
      "service; see docs/deploy.md); `none`: no credential for the runner's platform.",
    values: ["none", "google-id-token"],
    default: "none",
  }),
  RUNNER_SA_KEY: setting.secret({
    description:
      "The JSON key of the edge's Google service account (the one with `roles/run.invoker` on the runner), " +
      "for `RUNNER_AUTH=google-id-token`.",
    defaultText: "(required with `RUNNER_AUTH=google-id-token`)",
  }),
  RUNNER_AUDIENCE: setting.url({
    description: "The ID token's audience: the runner's Cloud Run URL (or a custom audience set on the service).",
    schemes: ["https", "http"],
    originOnly: true,
    defaultText: "the origin of `RUNNER_URL` (`wss://` read as `https://`)",
  }),
} as const;

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Reads the runner auth settings; a key that cannot be used is a `SettingError` at start. */
export function loadRunnerAuth(env: SettingsEnv, runnerUrl: string): RunnerAuthConfig {
  const s = readSettings(RUNNER_AUTH_SETTINGS, env);
  if (s.RUNNER_AUTH === "none") return { kind: "none" };
  if (!s.RUNNER_SA_KEY) {
    throw new SettingError({
      setting: "RUNNER_SA_KEY",
      value: undefined,
      expected: "the service account's JSON key (wrangler secret put RUNNER_SA_KEY) with RUNNER_AUTH=google-id-token",
    });
  }
  const parsed = parseServiceAccountKey(s.RUNNER_SA_KEY);
  if (!parsed.ok) {
    throw new SettingError({
      setting: "RUNNER_SA_KEY",
      value: s.RUNNER_SA_KEY,
      secret: true,
      problem: parsed.message,
      expected: "the service account's JSON key as IAM gives it",
    });
  }
  const runner = new URL(runnerUrl.replace(/^ws/, "http"));
  // a bearer token only over TLS, but for a runner on this machine (development, tests)
  if (runner.protocol !== "https:" && !LOOPBACK.has(runner.hostname)) {
    throw new SettingError({
      setting: "RUNNER_URL",
      value: runnerUrl,
      expected: "a wss:// URL with RUNNER_AUTH=google-id-token (the ID token must not cross the network in clear)",
    });
  }
  return { kind: "google-id-token", key: parsed.key, audience: s.RUNNER_AUDIENCE ?? runner.origin };
}

/** The headers the relay upgrade adds for `auth` (none for `none`); rejects when no token can be had now. */
export type UpgradeHeaders = () => Promise<Record<string, string>>;

export function runnerUpgradeHeaders(auth: RunnerAuthConfig): UpgradeHeaders | undefined {
  if (auth.kind === "none") return undefined;
  const source = idTokenSourceFor(auth.key, auth.audience);
  return async () => ({ Authorization: `Bearer ${await source.token()}` });
}

/** One audience's tokens in this isolate: the cache, its one fetch in flight, the signing key. */
class IdTokenSource {
  private readonly cache = new IdTokenCache();
  private signingKey: Promise<SigningKey> | undefined;
  private inFlight: Promise<string> | undefined;

  constructor(
    private readonly key: ServiceAccountKey,
    private readonly audience: string,
  ) {}

  /** A token to send now: the cached one, or the one the running (or a new) fetch brings. */
  async token(): Promise<string> {
    const d = this.cache.decide(Date.now());
    if (d.fetch) {
      this.inFlight = this.fetchToken();
      // a background refresh's failure is the next caller's (and the log's), not unhandled
      this.inFlight.catch(() => {});
    }
    if (d.token !== undefined) return d.token;
    if (this.inFlight) return this.inFlight;
    throw new Error(`no Google ID token for the runner: ${d.error ?? "unknown error"}`);
  }

  private async fetchToken(): Promise<string> {
    this.cache.fetchStarted();
    try {
      this.signingKey ??= importSigningKey(this.key);
      const signingKey = await this.signingKey.catch((e: unknown) => {
        this.signingKey = undefined;
        throw new Error(`RUNNER_SA_KEY's private_key cannot be imported: ${String(e)}`);
      });
      const assertion = await signIdTokenAssertion(this.key, signingKey, this.audience, Date.now());
      const res = await fetch(this.key.tokenUri, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: idTokenRequestBody(assertion),
      });
      const answer = parseIdTokenAnswer(res.status, await res.text());
      if (!answer.ok) throw new Error(answer.message);
      return this.cache.fetched(answer.idToken, answer.expiresAtMs);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const retryInMs = this.cache.fetchFailed(message, Date.now());
      console.error(
        JSON.stringify({ level: "error", msg: "no Google ID token for the runner", error: message, retryInMs }),
      );
      throw new Error(`no Google ID token for the runner: ${message}`);
    } finally {
      this.inFlight = undefined;
    }
  }
}

/** Per isolate: every call's link to the same runner shares one source. */
const sources = new Map<string, IdTokenSource>();

function idTokenSourceFor(key: ServiceAccountKey, audience: string): IdTokenSource {
  const id = `${key.clientEmail}\n${key.privateKeyId}\n${audience}`;
  let source = sources.get(id);
  if (!source) sources.set(id, (source = new IdTokenSource(key, audience)));
  return source;
}
