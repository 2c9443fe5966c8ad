/**
 * X-Twilio-Signature: base64(HMAC-SHA1(authToken, url + sorted(name + value)...)), computed with
 * WebCrypto so the same code runs in the Worker and in Node. Semantics follow Twilio's own
 * `RequestValidator` (twilio-python / twilio-node): params sorted by name, each name's values
 * sorted; a https URL is also checked with and without its default port.
 */

import { equalSecrets } from "../auth/compare.js";

const encoder = new TextEncoder();

export type SignatureParams = Readonly<Record<string, string | readonly string[]>>;

/** The exact string Twilio signs. */
export function signaturePayload(url: string, params: SignatureParams = {}): string {
  let s = url;
  for (const name of Object.keys(params).sort()) {
    const v = params[name]!;
    const values = typeof v === "string" ? [v] : [...new Set(v)].sort();
    for (const value of values) s += name + value;
  }
  return s;
}

async function hmacSha1Base64(key: string, message: string): Promise<string> {
  const k = await crypto.subtle.importKey("raw", encoder.encode(key), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(message)));
  let bin = "";
  for (const b of mac) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Computes the signature Twilio would send for `url` and `params`. */
export function computeTwilioSignature(authToken: string, url: string, params: SignatureParams = {}): Promise<string> {
  return hmacSha1Base64(authToken, signaturePayload(url, params));
}

/** The URL variants Twilio's validator accepts: as given, and with/without the default port. */
function urlVariants(url: string): string[] {
  const m = /^(https?|wss?):\/\/([^/:?#]+)(:\d+)?(.*)$/.exec(url);
  if (!m) return [url];
  const [, scheme, host, port, rest] = m;
  const defaultPort = scheme === "https" || scheme === "wss" ? ":443" : ":80";
  const variants = [url];
  if (port === undefined) variants.push(`${scheme}://${host}${defaultPort}${rest}`);
  else if (port === defaultPort) variants.push(`${scheme}://${host}${rest}`);
  return variants;
}

/** True when `signature` is Twilio's for `url` + `params` under `authToken`. */
export async function validateTwilioSignature(
  authToken: string,
  signature: string | null | undefined,
  url: string,
  params: SignatureParams = {},
): Promise<boolean> {
  if (!signature || !authToken) return false;
  for (const u of urlVariants(url)) {
    if (equalSecrets(signature, await computeTwilioSignature(authToken, u, params))) return true;
  }
  return false;
}
