/**
 * The per-call stream token: the voice webhook (whose signature was checked) mints it into a
 * `<Parameter name="ozen_token">`, and the call's Durable Object checks it in
 * `start.customParameters` before it takes the stream. It holds even when a proxy rewrites the
 * upgrade URL, and unlike Twilio's upgrade signature (over the URL alone, never expiring) it
 * expires and names one use.
 *
 * Self-contained, so an application that writes its own TwiML can mint one (docs/security.md):
 *
 *     v1.{expiresAtS}.{nonce}.{mac}
 *
 * - `expiresAtS`: Unix time in whole seconds after which it is refused;
 * - `nonce`: 16 to 64 characters of `A-Z a-z 0-9 _ -`, random per token;
 * - `mac`: HMAC-SHA256(secret, `ozen_token:v1:{CallSid}:{expiresAtS}:{nonce}`), unpadded base64url.
 *
 * Single use is the call object's part: it keeps "this call has streamed" (with the nonce) in its
 * storage and refuses any later stream for the CallSid (`stream-admission.ts`).
 */
import { equalSecrets } from "@ozen/shared";

const encoder = new TextEncoder();

export const CALL_TOKEN_PARAMETER = "ozen_token";

/** The token's format version, its first field. */
export const CALL_TOKEN_VERSION = "v1";

/**
 * A token whose expiry lies further ahead than this (plus a minute for a minter's clock running
 * ahead) is refused: a minting or clock mistake, s.
 */
export const CALL_TOKEN_MAX_LIFETIME_S = 3600;
const CLOCK_AHEAD_MS = 60_000;

const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const EXPIRES = /^[1-9][0-9]{0,11}$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;

/** Why a token was refused (the refusal's `message` says it for a person). */
export type CallTokenProblem = "missing" | "malformed" | "wrong_mac" | "expired" | "too_far_ahead";

export type CallTokenCheck =
  | { readonly ok: true; readonly nonce: string; readonly expiresAtMs: number }
  | { readonly ok: false; readonly problem: CallTokenProblem; readonly message: string };

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The exact text the MAC covers. */
export function callTokenMacInput(callSid: string, expiresAtS: number, nonce: string): string {
  return `${CALL_TOKEN_PARAMETER}:${CALL_TOKEN_VERSION}:${callSid}:${expiresAtS}:${nonce}`;
}

async function mac(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return base64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(text))));
}

/** A fresh random nonce: 16 random bytes, unpadded base64url (22 characters). */
export function newNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * A token for `callSid` under `secret`, valid until `nowMs + ttlMs` (rounded up to the second).
 * `nonce` defaults to a fresh random one.
 */
export async function mintCallToken(
  secret: string,
  callSid: string,
  o: { readonly nowMs: number; readonly ttlMs: number; readonly nonce?: string },
): Promise<string> {
  const expiresAtS = Math.ceil((o.nowMs + o.ttlMs) / 1000);
  const nonce = o.nonce ?? newNonce();
  if (!NONCE.test(nonce)) throw new Error("a call token's nonce is 16 to 64 characters of A-Z a-z 0-9 _ -");
  return `${CALL_TOKEN_VERSION}.${expiresAtS}.${nonce}.${await mac(secret, callTokenMacInput(callSid, expiresAtS, nonce))}`;
}

function refused(problem: CallTokenProblem, message: string): CallTokenCheck {
  return { ok: false, problem, message };
}

/**
 * Checks `token` for `callSid` under `secret` at `nowMs` (wall clock, ms): its format, its MAC
 * (compared in constant time; a token of another call or another secret fails here), its expiry.
 * Whether it was used before is the call object's to say.
 */
export async function checkCallToken(
  secret: string,
  callSid: string,
  token: string | undefined,
  nowMs: number,
): Promise<CallTokenCheck> {
  if (!token) return refused("missing", `start has no ${CALL_TOKEN_PARAMETER} parameter`);
  const parts = token.split(".");
  const [version, expires, nonce, given] = parts;
  if (
    parts.length !== 4 ||
    version !== CALL_TOKEN_VERSION ||
    !EXPIRES.test(expires!) ||
    !NONCE.test(nonce!) ||
    !MAC.test(given!)
  ) {
    return refused("malformed", `${CALL_TOKEN_PARAMETER} is not a v1.{expiresAtS}.{nonce}.{mac} token`);
  }
  const expiresAtS = Number(expires);
  if (!equalSecrets(given!, await mac(secret, callTokenMacInput(callSid, expiresAtS, nonce!)))) {
    return refused("wrong_mac", `${CALL_TOKEN_PARAMETER} was not minted for this call with this edge's secret`);
  }
  const expiresAtMs = expiresAtS * 1000;
  if (nowMs > expiresAtMs) {
    return refused("expired", `${CALL_TOKEN_PARAMETER} expired ${Math.round((nowMs - expiresAtMs) / 1000)} s ago`);
  }
  if (expiresAtMs - nowMs > CALL_TOKEN_MAX_LIFETIME_S * 1000 + CLOCK_AHEAD_MS) {
    return refused("too_far_ahead", `${CALL_TOKEN_PARAMETER} expires more than ${CALL_TOKEN_MAX_LIFETIME_S} s ahead`);
  }
  return { ok: true, nonce: nonce!, expiresAtMs };
}
