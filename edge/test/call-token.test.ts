/**
 * The per-call token as plain values: its format (other deployments and the webhook rely on it)
 * and the check CallSession runs on `start` (a missing, forged or another call's token is refused;
 * on a socket that is bad_token and close 1008, shown in bad-input.test.ts).
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CALL_TOKEN_PARAMETER, callToken, verifyCallToken } from "../src/call/call-token.js";

describe("the call token", () => {
  it("is HMAC-SHA256(secret, 'call:' + CallSid) in unpadded base64url, sent as ozen_token", async () => {
    const expected = createHmac("sha256", "s3cret").update("call:CA123").digest("base64url");
    expect(await callToken("s3cret", "CA123")).toBe(expected);
    expect(CALL_TOKEN_PARAMETER).toBe("ozen_token");
  });

  it("verifies its own call's token", async () => {
    expect(await verifyCallToken("s3cret", "CA123", await callToken("s3cret", "CA123"))).toBe(true);
  });

  it("refuses a missing, an empty, a forged and another call's token, and one made with another secret", async () => {
    const other = await callToken("s3cret", "CA999");
    const wrongSecret = await callToken("other", "CA123");
    for (const token of [undefined, "", "forged", other, wrongSecret])
      expect(await verifyCallToken("s3cret", "CA123", token), String(token)).toBe(false);
  });
});
