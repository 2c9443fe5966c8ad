/**
 * Verifying ozen's webhook requests, with WebCrypto (Node 20, Workers, Deno, browsers alike).
 * ozen signs each webhook (`docs/api.md`, Records and webhooks): `X-Ozen-Timestamp` is the
 * attempt's Unix seconds and `X-Ozen-Signature` is `v1=` + hex HMAC-SHA256 with the account's
 * secret over `timestamp + "." + body` (the raw body bytes).
 */
import { equalSecrets } from "@ozen/shared";
import { WebhookVerificationError } from "./errors.js";
import { parseEvent } from "./events.js";
import type { OzenEvent, UnknownEvent } from "./events.js";

/** One webhook: the event and where it stands in the call's sequence. */
export interface WebhookDelivery {
  /** `{callSid}:{seq}`, equal to the `Idempotency-Key` header: deduplicate on it. */
  readonly id: string;
  /** 1, 2, ... per call, in order (gaps only where the edge's bound dropped events). */
  readonly seq: number;
  readonly accountSid: string;
  readonly event: OzenEvent | UnknownEvent;
}

/** How far the timestamp may be from now by default, seconds. */
export const DEFAULT_TOLERANCE_S = 300;

const encoder = new TextEncoder();

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === wanted) return Array.isArray(v) ? v.join(",") : v;
  }
  return undefined;
}

/** The `X-Ozen-Signature` value ozen sends for `body` at `timestampS` (for tests). */
export async function signWebhook(secret: string, timestampS: number, body: string | Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const raw = typeof body === "string" ? encoder.encode(body) : body;
  const signed = new Uint8Array(String(timestampS).length + 1 + raw.length);
  signed.set(encoder.encode(`${timestampS}.`));
  signed.set(raw, String(timestampS).length + 1);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
  return "v1=" + Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks one webhook request and returns its delivery; throws WebhookVerificationError.
 * `headers`: a `Headers` or a plain object (Node's `req.headers`); `body`: the raw body exactly as
 * received; `toleranceS`: how far the timestamp may be from `nowS` (default: the clock).
 */
export async function verifyWebhook(
  headers: HeaderSource,
  body: string | Uint8Array,
  secret: string,
  o: { readonly toleranceS?: number; readonly nowS?: number } = {},
): Promise<WebhookDelivery> {
  if (!secret) throw new WebhookVerificationError("no webhook secret configured");
  const timestamp = header(headers, "X-Ozen-Timestamp");
  const signature = header(headers, "X-Ozen-Signature");
  if (timestamp === undefined || signature === undefined)
    throw new WebhookVerificationError("X-Ozen-Timestamp or X-Ozen-Signature is missing");
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookVerificationError("X-Ozen-Timestamp is not Unix seconds");
  const ts = Number(timestamp);
  const now = o.nowS ?? Date.now() / 1000;
  const tolerance = o.toleranceS ?? DEFAULT_TOLERANCE_S;
  if (Math.abs(now - ts) > tolerance)
    throw new WebhookVerificationError(
      `X-Ozen-Timestamp is ${Math.round(now - ts)} s from now, outside ${tolerance} s`,
    );
  const expected = await signWebhook(secret, ts, body);
  // several comma-separated values may come (a secret being rotated): any one that matches
  const given = signature.split(",").map((s) => s.trim());
  if (!given.some((s) => equalSecrets(s, expected)))
    throw new WebhookVerificationError("X-Ozen-Signature does not match the body");
  let value: unknown;
  try {
    value = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body));
  } catch {
    throw new WebhookVerificationError("the body is not JSON");
  }
  const v = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof v["id"] !== "string" || typeof v["seq"] !== "number" || typeof v["accountSid"] !== "string")
    throw new WebhookVerificationError("the body has no id, seq and accountSid");
  return { id: v["id"], seq: v["seq"], accountSid: v["accountSid"], event: parseEvent(v["event"]) };
}
