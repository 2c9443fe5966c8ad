/** The relay credential (sign, verify, replay cache), with plain values and the real WebCrypto HMAC. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  RELAY_CREDENTIAL_LIFETIME_MS,
  RELAY_CREDENTIAL_SKEW_MS,
  RelayNonceCache,
  signRelayCredential,
  verifyRelayCredential,
} from "../src/index.js";
import type { RelayCredential } from "../src/index.js";

const SECRET = "relay-secret-0123456789";
const NOW = 1_700_000_000_000;

async function reason(text: string | undefined, nowMs = NOW, secret = SECRET): Promise<string> {
  const r = await verifyRelayCredential(secret, text, nowMs);
  return r.ok ? "ok" : r.reason;
}

describe("signing and verifying", () => {
  it("a credential opens the call it was signed for, until its expiry", async () => {
    const text = await signRelayCredential(SECRET, "CA0123456789abcdef0123456789abcdef", NOW);
    const r = await verifyRelayCredential(SECRET, text, NOW + 1000);
    expect(r).toMatchObject({
      ok: true,
      credential: { callSid: "CA0123456789abcdef0123456789abcdef", expiresAtMs: NOW + RELAY_CREDENTIAL_LIFETIME_MS },
    });
    expect(text.length).toBeLessThan(200);
    expect(text).toMatch(/^[A-Za-z0-9_.-]+$/); // a valid HTTP header value, no quoting
  });

  it("round-trips any call id", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 64 }), async (callSid) => {
        const r = await verifyRelayCredential(SECRET, await signRelayCredential(SECRET, callSid, NOW), NOW);
        expect(r.ok && r.credential.callSid).toBe(callSid);
      }),
      { numRuns: 50 },
    );
  });

  it("changing any one character of a credential makes it refused", async () => {
    const text = await signRelayCredential(SECRET, "CAtamper", NOW, { nonce: "nonce-0123456789" });
    const alphabet = "ABCabc019_-.";
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: text.length - 1 }), fc.constantFrom(...alphabet), async (i, c) => {
        fc.pre(text[i] !== c);
        const changed = text.slice(0, i) + c + text.slice(i + 1);
        expect(await reason(changed)).not.toBe("ok");
      }),
      { numRuns: 200 },
    );
  });

  it("refuses by reason: missing, malformed, another secret, expired, too long-lived", async () => {
    const text = await signRelayCredential(SECRET, "CA1", NOW);
    expect(await reason(undefined)).toBe("missing");
    expect(await reason("")).toBe("missing");
    expect(await reason("Bearer abc")).toBe("malformed");
    expect(await reason("v1.Q0Ex.1.nonce-0123456789.AAAA")).toBe("malformed");
    expect(await reason("x".repeat(600))).toBe("malformed");
    expect(await reason(text, NOW, "another-secret-0123456789")).toBe("bad_signature");
    expect(await reason(text, NOW + RELAY_CREDENTIAL_LIFETIME_MS + RELAY_CREDENTIAL_SKEW_MS)).toBe("ok");
    expect(await reason(text, NOW + RELAY_CREDENTIAL_LIFETIME_MS + RELAY_CREDENTIAL_SKEW_MS + 1)).toBe("expired");
    const longLived = await signRelayCredential(SECRET, "CA1", NOW, { lifetimeMs: 3_600_000 });
    expect(await reason(longLived)).toBe("too_long_lived");
  });

  it("a credential signed with one call's id does not verify as another's (the MAC covers the call)", async () => {
    const a = await signRelayCredential(SECRET, "CAaaaa", NOW, { nonce: "same-nonce-0123" });
    const b = await signRelayCredential(SECRET, "CAbbbb", NOW, { nonce: "same-nonce-0123" });
    const [, sidA] = a.split(".");
    const [, , ...restB] = b.split(".");
    // call A's id with call B's expiry, nonce and MAC
    expect(await reason(["v1", sidA, ...restB].join("."))).toBe("bad_signature");
  });

  it("two credentials for the same call differ (a fresh nonce each)", async () => {
    const a = await signRelayCredential(SECRET, "CA1", NOW);
    const b = await signRelayCredential(SECRET, "CA1", NOW);
    expect(a).not.toBe(b);
  });

  it("refuses to sign with an empty secret", async () => {
    await expect(signRelayCredential("", "CA1", NOW)).rejects.toThrow(/RELAY_SECRET is empty/);
  });
});

describe("the replay cache", () => {
  const cred = (nonce: string, expiresAtMs = NOW + 60_000): RelayCredential => ({ callSid: "CA1", nonce, expiresAtMs });

  it("admits a nonce once until its credential expires", () => {
    const cache = new RelayNonceCache(10, 0);
    expect(cache.admit(cred("n1"), NOW)).toBe("ok");
    expect(cache.admit(cred("n1"), NOW + 59_000)).toBe("replayed");
    expect(cache.admit(cred("n2"), NOW)).toBe("ok");
    // past the expiry the credential itself is refused as expired; the nonce may be forgotten
    expect(cache.admit(cred("n3"), NOW + 61_000)).toBe("ok");
    expect(cache.size).toBe(1);
  });

  it("is bounded: full of live nonces it refuses new ones rather than forget one", () => {
    const cache = new RelayNonceCache(3, 0);
    for (const n of ["a", "b", "c"]) expect(cache.admit(cred(n), NOW)).toBe("ok");
    expect(cache.admit(cred("d"), NOW + 1)).toBe("full");
    expect(cache.admit(cred("a"), NOW + 1)).toBe("replayed");
    // once they expire there is room again
    expect(cache.admit(cred("d", NOW + 200_000), NOW + 60_001)).toBe("ok");
    expect(cache.size).toBe(1);
  });

  it("keeps a nonce through the clock skew the verifier allows", () => {
    const cache = new RelayNonceCache(10, RELAY_CREDENTIAL_SKEW_MS);
    expect(cache.admit(cred("n"), NOW)).toBe("ok");
    expect(cache.admit(cred("n"), NOW + 60_000 + RELAY_CREDENTIAL_SKEW_MS)).toBe("replayed");
  });
});
