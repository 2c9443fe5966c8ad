/**
 * The relay credential: what lets one edge socket speak for one call at the runner. The edge
 * signs a fresh one for every (re)connect of a call's relay and sends it in the upgrade's
 * `X-Ozen-Relay-Credential` header (not `Authorization`: that header is left for the platform's
 * own identity token, e.g. Cloud Run IAM). The runner checks it before it accepts the socket,
 * and the socket may then carry that call and no other.
 *
 * Format (every part free of `.`):
 *
 *   v1.{callSid, base64url}.{expiresAtMs, decimal}.{nonce, base64url of 16 random bytes}.{mac}
 *
 * `mac` is base64url(HMAC-SHA256(RELAY_SECRET, "ozen-relay:" + everything before the last dot)).
 * The `ozen-relay:` prefix keeps a relay credential from ever being the MAC of something else
 * signed with the same secret (the call token signs `call:{CallSid}`).
 *
 * Checks, in this order: shape, MAC (WebCrypto `verify`, constant time), time (`nowMs` is given:
 * expired, or an expiry further ahead than a credential may live), then the nonce, once: the
 * runner keeps each nonce it accepted until the credential expires (`RelayNonceCache`), so a
 * credential seen on the wire cannot open a second socket. Pure apart from the HMAC: no clock of
 * its own; the nonce is random unless given.
 */
import { encodeBase64 } from "../audio/base64.js";

/** The upgrade header that carries the credential. */
export const RELAY_CREDENTIAL_HEADER = "X-Ozen-Relay-Credential";

/** How long a credential the edge signs is valid, ms: it only has to reach the runner's upgrade. */
export const RELAY_CREDENTIAL_LIFETIME_MS = 60_000;

/** Clock difference between the edge and the runner a credential tolerates either way, ms. */
export const RELAY_CREDENTIAL_SKEW_MS = 30_000;

/** Longest credential text taken (a 64-character CallSid gives about 170). */
const MAX_CREDENTIAL_CHARS = 512;

const VERSION = "v1";
const MAC_PREFIX = "ozen-relay:";
const encoder = new TextEncoder();

/** A credential whose MAC and time checked out. */
export interface RelayCredential {
  /** The one call the socket may carry. */
  readonly callSid: string;
  /** Wall time after which it is refused, ms since the epoch. */
  readonly expiresAtMs: number;
  /** Random, once per credential: the replay cache remembers it until the expiry. */
  readonly nonce: string;
}

/** Why a credential was refused (the runner counts each, `relayAuthRefused`). */
export type RelayCredentialRefusal =
  "missing" | "malformed" | "bad_signature" | "expired" | "too_long_lived" | "replayed" | "replay_cache_full";

/** Every refusal reason, for counters that list them all. */
export const RELAY_CREDENTIAL_REFUSALS: readonly RelayCredentialRefusal[] = [
  "missing",
  "malformed",
  "bad_signature",
  "expired",
  "too_long_lived",
  "replayed",
  "replay_cache_full",
];

export type RelayCredentialCheck =
  | { readonly ok: true; readonly credential: RelayCredential }
  | { readonly ok: false; readonly reason: RelayCredentialRefusal; readonly message: string };

/** WebCrypto's key type, named without the DOM library (Node's and workerd's `crypto.subtle`). */
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

let cachedKey: { secret: string; key: Promise<HmacKey> } | undefined;

/** The HMAC key for `secret` (the last one is kept: a deployable has one). */
function hmacKey(secret: string): Promise<HmacKey> {
  if (cachedKey?.secret !== secret) {
    cachedKey = {
      secret,
      key: crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
        "sign",
        "verify",
      ]),
    };
  }
  return cachedKey.key;
}

function base64url(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes base64url; undefined when it is not. */
function fromBase64url(s: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** 16 random bytes, base64url: a credential's nonce. */
export function newRelayNonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

export interface SignRelayCredentialOptions {
  /** How long it is valid from `nowMs`, ms (default `RELAY_CREDENTIAL_LIFETIME_MS`). */
  readonly lifetimeMs?: number;
  /** The nonce (default: 16 random bytes); tests give their own. */
  readonly nonce?: string;
}

/**
 * A credential for one (re)connect of `callSid`'s relay, valid from `nowMs` (wall ms) for
 * `lifetimeMs`. `secret` is RELAY_SECRET, shared by the edge and the runner.
 */
export async function signRelayCredential(
  secret: string,
  callSid: string,
  nowMs: number,
  o: SignRelayCredentialOptions = {},
): Promise<string> {
  if (!secret) throw new RangeError("RELAY_SECRET is empty: a credential signed with it would open nothing");
  const nonce = o.nonce ?? newRelayNonce();
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(nonce)) throw new RangeError("nonce must be 8..64 base64url characters");
  const expiresAtMs = Math.floor(nowMs + (o.lifetimeMs ?? RELAY_CREDENTIAL_LIFETIME_MS));
  const payload = `${VERSION}.${base64url(encoder.encode(callSid))}.${expiresAtMs}.${nonce}`;
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(MAC_PREFIX + payload));
  return `${payload}.${base64url(new Uint8Array(mac))}`;
}

export interface VerifyRelayCredentialOptions {
  /** The longest a valid credential may still live at `nowMs`, ms (default `RELAY_CREDENTIAL_LIFETIME_MS`). */
  readonly maxLifetimeMs?: number;
  /** Clock difference tolerated between signer and checker, ms (default `RELAY_CREDENTIAL_SKEW_MS`). */
  readonly skewMs?: number;
}

function refused(reason: RelayCredentialRefusal, message: string): RelayCredentialCheck {
  return { ok: false, reason, message };
}

/**
 * Checks `text` (the header's value; undefined when absent) against `secret` at `nowMs` (wall
 * ms): shape, MAC, expiry. Does not look at the nonce's history: `RelayNonceCache.admit` does,
 * after this passed. Never throws.
 */
export async function verifyRelayCredential(
  secret: string,
  text: string | undefined,
  nowMs: number,
  o: VerifyRelayCredentialOptions = {},
): Promise<RelayCredentialCheck> {
  if (text === undefined || text === "") return refused("missing", `no ${RELAY_CREDENTIAL_HEADER} header`);
  if (text.length > MAX_CREDENTIAL_CHARS) {
    return refused("malformed", `credential is ${text.length} characters, at most ${MAX_CREDENTIAL_CHARS}`);
  }
  const parts = text.split(".");
  if (parts.length !== 5 || parts[0] !== VERSION) {
    return refused("malformed", `credential is not ${VERSION}.callSid.expiresAtMs.nonce.mac`);
  }
  const [, sidPart, expiresPart, nonce, macPart] = parts as [string, string, string, string, string];
  const sidBytes = fromBase64url(sidPart);
  const mac = fromBase64url(macPart);
  if (!sidBytes || sidBytes.length === 0 || !/^\d{1,16}$/.test(expiresPart) || !/^[A-Za-z0-9_-]{8,64}$/.test(nonce)) {
    return refused("malformed", "credential has a malformed part");
  }
  if (!mac || mac.length !== 32) return refused("malformed", "credential's MAC is not 32 bytes");
  if (!secret) return refused("bad_signature", "RELAY_SECRET is empty: no credential can be checked");
  const payload = text.slice(0, text.lastIndexOf("."));
  const valid = await crypto.subtle.verify("HMAC", await hmacKey(secret), mac, encoder.encode(MAC_PREFIX + payload));
  if (!valid) return refused("bad_signature", "credential's MAC does not match RELAY_SECRET");
  const expiresAtMs = Number(expiresPart);
  const skewMs = o.skewMs ?? RELAY_CREDENTIAL_SKEW_MS;
  const maxLifetimeMs = o.maxLifetimeMs ?? RELAY_CREDENTIAL_LIFETIME_MS;
  if (nowMs > expiresAtMs + skewMs) return refused("expired", `credential expired ${nowMs - expiresAtMs} ms ago`);
  if (expiresAtMs > nowMs + maxLifetimeMs + skewMs) {
    return refused("too_long_lived", `credential expires in ${expiresAtMs - nowMs} ms, at most ${maxLifetimeMs} ms`);
  }
  let callSid: string;
  try {
    callSid = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(sidBytes);
  } catch {
    return refused("malformed", "credential's call is not UTF-8");
  }
  return { ok: true, credential: { callSid, expiresAtMs, nonce } };
}

/**
 * The nonces of credentials accepted and not yet expired (the replay cache), bounded. Only
 * credentials whose MAC checked out are admitted, so only the edge can fill it; when full of
 * live nonces it refuses new ones (`full`) rather than forget one that could then be replayed.
 * Pure: `nowMs` is given.
 */
export class RelayNonceCache {
  /** Nonce -> the wall time it may be forgotten, ms; insertion order is nearly expiry order. */
  private readonly until = new Map<string, number>();

  /**
   * @param maxEntries live nonces kept at most (about connects per credential lifetime).
   * @param skewMs kept this long past the expiry, as `verifyRelayCredential` accepts them.
   */
  constructor(
    readonly maxEntries = 100_000,
    private readonly skewMs = RELAY_CREDENTIAL_SKEW_MS,
  ) {}

  get size(): number {
    return this.until.size;
  }

  /** A checked credential at `nowMs`: `ok` (remembered from now), `replayed` or `full`. */
  admit(credential: RelayCredential, nowMs: number): "ok" | "replayed" | "full" {
    this.prune(nowMs);
    const known = this.until.get(credential.nonce);
    if (known !== undefined && known >= nowMs) return "replayed";
    if (this.until.size >= this.maxEntries) {
      for (const [nonce, until] of this.until) if (until < nowMs) this.until.delete(nonce);
      if (this.until.size >= this.maxEntries) return "full";
    }
    this.until.set(credential.nonce, credential.expiresAtMs + this.skewMs);
    return "ok";
  }

  /** Forgets expired nonces from the oldest on (those behind a longer-lived one wait their turn). */
  private prune(nowMs: number): void {
    for (const [nonce, until] of this.until) {
      if (until >= nowMs) break;
      this.until.delete(nonce);
    }
  }
}
