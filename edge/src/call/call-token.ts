/**
 * The per-call token: the webhook (whose signature was checked) puts it in a `<Parameter>`, and
 * the Durable Object checks it in `start.customParameters` before using any audio. It holds even
 * when a proxy rewrites the upgrade URL. Stateless: HMAC-SHA256(secret, CallSid), base64url.
 */
import { equalSecrets } from "@ozen/shared";

const encoder = new TextEncoder();

export const CALL_TOKEN_PARAMETER = "ozen_token";

export async function callToken(secret: string, callSid: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`call:${callSid}`)));
  let bin = "";
  for (const b of mac) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** True when `token` is the call's token under `secret` (compared in constant time). */
export async function verifyCallToken(secret: string, callSid: string, token: string | undefined): Promise<boolean> {
  if (!token) return false;
  return equalSecrets(token, await callToken(secret, callSid));
}
