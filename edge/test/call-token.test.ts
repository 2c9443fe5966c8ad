/**
 * The per-call stream token as plain values: its format (applications that write their own TwiML
 * mint it as docs/security.md shows, with nothing but an HMAC) and the check CallSession runs on
 * `start`: a missing, malformed, forged, expired or another call's token is refused (on a socket
 * that is bad_token and close 1008; single use is the call object's: stream-credentials.test.ts).
 */
import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CALL_TOKEN_MAX_LIFETIME_S,
  CALL_TOKEN_PARAMETER,
  checkCallToken,
  mintCallToken,
} from "../src/call/call-token.js";

const SECRET = "s3cret";
const CALL = "CA0123456789abcdef0123456789abcdef";
const OTHER_CALL = "CAfedcba9876543210fedcba9876543210";
const NOW_MS = 1_750_000_000_000;

/** The token exactly as docs/security.md tells an application to mint it (Node). */
function mintAsDocumented(secret: string, callSid: string, ttlS: number, nowMs = Date.now()): string {
  const expiresAtS = Math.floor(nowMs / 1000) + ttlS;
  const nonce = randomBytes(16).toString("base64url");
  const mac = createHmac("sha256", secret)
    .update(`ozen_token:v1:${callSid}:${expiresAtS}:${nonce}`)
    .digest("base64url");
  return `v1.${expiresAtS}.${nonce}.${mac}`;
}

describe("the call token's format", () => {
  it("is v1.{expiresAtS}.{nonce}.{mac}: HMAC-SHA256 over ozen_token:v1:{CallSid}:{expiresAtS}:{nonce}, sent as ozen_token", async () => {
    const token = await mintCallToken(SECRET, CALL, { nowMs: NOW_MS, ttlMs: 300_000, nonce: "n0nce-0123456789ab" });
    const expiresAtS = NOW_MS / 1000 + 300;
    const mac = createHmac("sha256", SECRET).update(`ozen_token:v1:${CALL}:${expiresAtS}:n0nce-0123456789ab`);
    expect(token).toBe(`v1.${expiresAtS}.n0nce-0123456789ab.${mac.digest("base64url")}`);
    expect(CALL_TOKEN_PARAMETER).toBe("ozen_token");
  });

  it("gets a fresh random nonce each time it is minted", async () => {
    const a = await mintCallToken(SECRET, CALL, { nowMs: NOW_MS, ttlMs: 300_000 });
    const b = await mintCallToken(SECRET, CALL, { nowMs: NOW_MS, ttlMs: 300_000 });
    expect(a.split(".")[2]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(a.split(".")[2]).not.toBe(b.split(".")[2]);
  });

  it("accepts a token minted as docs/security.md shows, naming its nonce and expiry", async () => {
    const token = mintAsDocumented(SECRET, CALL, 120);
    const r = await checkCallToken(SECRET, CALL, token, Date.now());
    expect(r).toEqual({ ok: true, nonce: token.split(".")[2], expiresAtMs: Number(token.split(".")[1]) * 1000 });
  });
});

describe("checking a call token", () => {
  const mint = (o: { secret?: string; callSid?: string; ttlMs?: number } = {}) =>
    mintCallToken(o.secret ?? SECRET, o.callSid ?? CALL, { nowMs: NOW_MS, ttlMs: o.ttlMs ?? 300_000 });

  it("refuses a missing or empty token", async () => {
    for (const token of [undefined, ""])
      expect(await checkCallToken(SECRET, CALL, token, NOW_MS)).toMatchObject({ ok: false, problem: "missing" });
  });

  it("refuses what is not a v1 token (the old fixed HMAC of the CallSid among them)", async () => {
    const good = await mint();
    const oldStyle = createHmac("sha256", SECRET).update(`call:${CALL}`).digest("base64url");
    const [, exp, nonce, mac] = good.split(".");
    for (const token of [
      "forged",
      oldStyle,
      `v2.${exp}.${nonce}.${mac}`,
      `v1.${exp}.${nonce}`,
      `v1.${exp}.${nonce}.${mac}.x`,
      `v1.-5.${nonce}.${mac}`,
      `v1.${exp}.short.${mac}`,
      `v1.${exp}.${nonce}.${mac}=`,
    ]) {
      expect(await checkCallToken(SECRET, CALL, token, NOW_MS), token).toMatchObject({
        ok: false,
        problem: "malformed",
      });
    }
  });

  it("refuses a token of another call, of another secret, and one whose expiry or nonce was changed", async () => {
    const good = await mint();
    const [v, exp, nonce, mac] = good.split(".");
    for (const token of [
      await mint({ callSid: OTHER_CALL }),
      await mint({ secret: "other" }),
      `${v}.${Number(exp) + 60}.${nonce}.${mac}`,
      `${v}.${exp}.${nonce!.replace(/^./, (ch) => (ch === "a" ? "b" : "a"))}.${mac}`,
    ]) {
      expect(await checkCallToken(SECRET, CALL, token, NOW_MS)).toMatchObject({
        ok: false,
        problem: "wrong_mac",
        message: "ozen_token was not minted for this call with this edge's secret",
      });
    }
  });

  it("accepts a token until its expiry and refuses it after", async () => {
    const token = await mint({ ttlMs: 300_000 });
    expect((await checkCallToken(SECRET, CALL, token, NOW_MS + 300_000)).ok).toBe(true);
    expect(await checkCallToken(SECRET, CALL, token, NOW_MS + 301_000)).toEqual({
      ok: false,
      problem: "expired",
      message: "ozen_token expired 1 s ago",
    });
  });

  it(`refuses a token that expires more than ${CALL_TOKEN_MAX_LIFETIME_S} s (and a minute) ahead`, async () => {
    const longLived = await mint({ ttlMs: (CALL_TOKEN_MAX_LIFETIME_S + 61) * 1000 });
    expect(await checkCallToken(SECRET, CALL, longLived, NOW_MS)).toMatchObject({
      ok: false,
      problem: "too_far_ahead",
    });
    const longest = await mint({ ttlMs: CALL_TOKEN_MAX_LIFETIME_S * 1000 });
    expect((await checkCallToken(SECRET, CALL, longest, NOW_MS)).ok).toBe(true);
  });
});
