/**
 * The relay's shared secret for a local stack the tools start (demo, benchmarks): a fresh random
 * one per run, given to both the edge (RELAY_SECRET var) and the runner, so the local stack
 * authenticates its relay as production does instead of running the runner with --insecure-local.
 */
import { randomBytes } from "node:crypto";
import { RELAY_CREDENTIAL_HEADER, signRelayCredential } from "@ozen/shared";

/** 32 random bytes, base64url. */
export function newRelaySecret(): string {
  return randomBytes(32).toString("base64url");
}

/** The upgrade headers of a relay socket for `callSid`, signed with `secret` now (what the edge sends). */
export async function relayHeaders(secret: string, callSid: string): Promise<Record<string, string>> {
  return { [RELAY_CREDENTIAL_HEADER]: await signRelayCredential(secret, callSid, Date.now()) };
}
