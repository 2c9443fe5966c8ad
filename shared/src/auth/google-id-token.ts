/**
 * Google ID tokens from a service-account key, the way Cloud Run's IAM front end wants them on
 * a request to a private service (`Authorization: Bearer <id token>`, audience = the service's
 * https origin). The protocol is Google's OAuth 2.0 JWT bearer grant with `target_audience`:
 *
 *   POST token_uri  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>
 *   JWT: RS256 over {iss, sub: client_email, aud: token_uri, iat, exp, target_audience}
 *   answer: {"id_token": "<JWT whose exp says how long it lasts>"}
 *
 * This module builds and signs the assertion (WebCrypto, the same in the Worker and in Node),
 * reads the answer, and decides when a cached token is to be used, refreshed or waited for
 * (`IdTokenCache`). No I/O and no clock: the caller fetches and passes `nowMs`.
 */

/** The fields of a service-account JSON key this uses. */
export interface ServiceAccountKey {
  readonly clientEmail: string;
  readonly privateKeyId: string;
  /** The PKCS#8 DER of the RSA private key (the PEM's body). */
  readonly privateKeyDer: Uint8Array<ArrayBuffer>;
  /** Where assertions are exchanged for tokens (Google's `https://oauth2.googleapis.com/token`). */
  readonly tokenUri: string;
}

export type KeyParse =
  { readonly ok: true; readonly key: ServiceAccountKey } | { readonly ok: false; readonly message: string };

/** The grant type of the JWT bearer exchange (RFC 7523). */
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/** How long an assertion is valid, s (Google accepts at most an hour). */
export const ASSERTION_LIFETIME_S = 3600;

/** A WebCrypto key (named through `crypto` so Node's types and the Worker's both have it). */
export type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

// rsaEncryption, 1.2.840.113549.1.1.1, as DER: the algorithm a PKCS#8 RSA key names
const RSA_ENCRYPTION_OID = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/**
 * Reads a service-account JSON key (as downloaded from IAM). Errors say what is wrong without
 * quoting the key: a text that is not JSON, not a service-account key, a private key that is not
 * an RSA key in PKCS#8 PEM, or a `token_uri` that is not https (http only on a loopback host).
 */
export function parseServiceAccountKey(json: string): KeyParse {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return { ok: false, message: "is not JSON (expected the service account's JSON key file)" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, message: "is not a JSON object" };
  const o = v as Record<string, unknown>;
  if (o["type"] !== "service_account") {
    return { ok: false, message: `has type ${JSON.stringify(o["type"])}, expected "service_account"` };
  }
  for (const field of ["client_email", "private_key", "private_key_id", "token_uri"]) {
    if (typeof o[field] !== "string" || o[field] === "") return { ok: false, message: `has no ${field}` };
  }
  const tokenUri = o["token_uri"] as string;
  if (!isSafeTokenUri(tokenUri)) {
    return { ok: false, message: `token_uri ${JSON.stringify(tokenUri)} is not https (http only on a loopback host)` };
  }
  const der = pemBody(o["private_key"] as string);
  if (!der) return { ok: false, message: "private_key is not a PEM `-----BEGIN PRIVATE KEY-----` block (PKCS#8)" };
  if (!isRsaPkcs8(der)) return { ok: false, message: "private_key is not an RSA key in PKCS#8 form" };
  return {
    ok: true,
    key: {
      clientEmail: o["client_email"] as string,
      privateKeyId: o["private_key_id"] as string,
      privateKeyDer: der,
      tokenUri,
    },
  };
}

function isSafeTokenUri(uri: string): boolean {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return false;
  }
  if (u.protocol === "https:") return true;
  return u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> | undefined {
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) return undefined;
  try {
    return bytesOf(atob(m[1]!.replace(/\s+/g, "")));
  } catch {
    return undefined;
  }
}

/** A DER SEQUENCE whose algorithm identifier (near the start of PrivateKeyInfo) is rsaEncryption. */
function isRsaPkcs8(der: Uint8Array): boolean {
  if (der[0] !== 0x30) return false;
  const head = der.subarray(0, 32);
  outer: for (let i = 0; i + RSA_ENCRYPTION_OID.length <= head.length; i++) {
    for (let j = 0; j < RSA_ENCRYPTION_OID.length; j++) if (head[i + j] !== RSA_ENCRYPTION_OID[j]) continue outer;
    return true;
  }
  return false;
}

/** The key as a WebCrypto signing key (RSASSA-PKCS1-v1_5, SHA-256). Rejects when the DER is not a valid key. */
export function importSigningKey(key: ServiceAccountKey): Promise<SigningKey> {
  return crypto.subtle.importKey("pkcs8", key.privateKeyDer, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** The claims of the assertion for an ID token of `audience`, issued at `nowMs`. */
export interface IdTokenAssertionClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
  readonly target_audience: string;
}

export function idTokenAssertionClaims(
  key: ServiceAccountKey,
  audience: string,
  nowMs: number,
): IdTokenAssertionClaims {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: key.clientEmail,
    sub: key.clientEmail,
    aud: key.tokenUri,
    iat,
    exp: iat + ASSERTION_LIFETIME_S,
    target_audience: audience,
  };
}

/** The signed assertion (a compact JWS, RS256) asking for an ID token of `audience` at `nowMs`. */
export async function signIdTokenAssertion(
  key: ServiceAccountKey,
  signingKey: SigningKey,
  audience: string,
  nowMs: number,
): Promise<string> {
  const header = { alg: "RS256", typ: "JWT", kid: key.privateKeyId };
  const input = `${base64urlJson(header)}.${base64urlJson(idTokenAssertionClaims(key, audience, nowMs))}`;
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signingKey, new TextEncoder().encode(input));
  return `${input}.${base64url(new Uint8Array(signature))}`;
}

/** The form body of the token request for `assertion` (`application/x-www-form-urlencoded`). */
export function idTokenRequestBody(assertion: string): string {
  return new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString();
}

export type IdTokenAnswer =
  | { readonly ok: true; readonly idToken: string; readonly expiresAtMs: number }
  | { readonly ok: false; readonly message: string };

/**
 * Reads the token endpoint's answer (`status`, body text). The token's lifetime is its own
 * `exp` claim (the JWT is Google's; it is passed on, not verified here).
 */
export function parseIdTokenAnswer(status: number, body: string): IdTokenAnswer {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { ok: false, message: `token endpoint answered HTTP ${status} with a body that is not JSON` };
  }
  const o = typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
  if (status !== 200 || typeof o["id_token"] !== "string") {
    const error = typeof o["error"] === "string" ? o["error"] : "no id_token";
    const description = typeof o["error_description"] === "string" ? `: ${o["error_description"]}` : "";
    return { ok: false, message: `token endpoint answered HTTP ${status}, ${error}${description}`.slice(0, 300) };
  }
  const idToken = o["id_token"];
  const exp = jwtClaims(idToken)?.["exp"];
  if (typeof exp !== "number" || !Number.isFinite(exp)) {
    return { ok: false, message: "the id_token is not a JWT with a numeric exp claim" };
  }
  return { ok: true, idToken, expiresAtMs: exp * 1000 };
}

/** The claims of a compact JWT, unverified; undefined when it is not one. */
export function jwtClaims(jwt: string): Record<string, unknown> | undefined {
  const parts = jwt.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(fromBase64url(parts[1]!)));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

// ---- the cache policy ----

export interface IdTokenCacheOptions {
  /** A token is refreshed (in the background, still used) once it has less than this left, ms. */
  readonly refreshAheadMs: number;
  /** A token with less than this left is not sent (a request may take a while to reach the front end), ms. */
  readonly minValidityMs: number;
  /** After a failed fetch, no new one for this long, doubling per failure up to `retryMaxMs`. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
}

export const DEFAULT_ID_TOKEN_CACHE: IdTokenCacheOptions = {
  refreshAheadMs: 5 * 60_000,
  minValidityMs: 30_000,
  retryMinMs: 500,
  retryMaxMs: 10_000,
};

/** What a caller who needs a token now does. */
export interface IdTokenDecision {
  /** The token to send now; undefined: none is usable. */
  readonly token: string | undefined;
  /** Start a fetch now (none is running, and no failure's backoff holds it back). */
  readonly fetch: boolean;
  /** No token and no fetch running: why (the last failure), for the caller's error. */
  readonly error: string | undefined;
}

/**
 * One audience's ID token: when to use the cached one, refresh it ahead of its expiry (one fetch
 * at a time, shared by every caller) or wait; failures back off. Pure: fed `nowMs`.
 */
export class IdTokenCache {
  private token: string | undefined;
  private expiresAtMs = 0;
  private fetching = false;
  private failures = 0;
  private retryAtMs = 0;
  private lastError: string | undefined;
  /** Fetches started (for counters and tests). */
  fetches = 0;

  constructor(private readonly o: IdTokenCacheOptions = DEFAULT_ID_TOKEN_CACHE) {}

  /** What to do for a caller that needs a token at `nowMs`. */
  decide(nowMs: number): IdTokenDecision {
    const usable = this.token !== undefined && this.expiresAtMs - nowMs > this.o.minValidityMs;
    const due = !usable || this.expiresAtMs - nowMs <= this.o.refreshAheadMs;
    const fetch = due && !this.fetching && nowMs >= this.retryAtMs;
    const token = usable ? this.token : undefined;
    return { token, fetch, error: token === undefined && !this.fetching && !fetch ? this.lastError : undefined };
  }

  /** The caller started the fetch `decide` asked for. */
  fetchStarted(): void {
    this.fetching = true;
    this.fetches++;
  }

  /** The fetch brought `idToken`, valid until `expiresAtMs`; returns it (callers waiting on the fetch send it). */
  fetched(idToken: string, expiresAtMs: number): string {
    this.fetching = false;
    this.token = idToken;
    this.expiresAtMs = expiresAtMs;
    this.failures = 0;
    this.retryAtMs = 0;
    this.lastError = undefined;
    return idToken;
  }

  /** The fetch failed at `nowMs` with `message`: the next waits out a backoff. Returns the delay, ms. */
  fetchFailed(message: string, nowMs: number): number {
    this.fetching = false;
    this.failures++;
    this.lastError = message;
    const delay = Math.min(this.o.retryMaxMs, this.o.retryMinMs * 2 ** (this.failures - 1));
    this.retryAtMs = nowMs + delay;
    return delay;
  }
}

// ---- encoding ----

function bytesOf(binary: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64urlJson(v: unknown): string {
  return base64url(new TextEncoder().encode(JSON.stringify(v)));
}

function fromBase64url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return bytesOf(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
}
