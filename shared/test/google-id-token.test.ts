import { createVerify, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ASSERTION_LIFETIME_S,
  IdTokenCache,
  JWT_BEARER_GRANT,
  idTokenRequestBody,
  importSigningKey,
  jwtClaims,
  parseIdTokenAnswer,
  parseServiceAccountKey,
  signIdTokenAssertion,
} from "../src/index.js";
import type { ServiceAccountKey } from "../src/index.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PEM = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const KEY_JSON = {
  type: "service_account",
  project_id: "p",
  private_key_id: "kid1",
  private_key: PEM,
  client_email: "edge@p.iam.gserviceaccount.com",
  token_uri: "https://oauth2.googleapis.com/token",
};

function parsedKey(): ServiceAccountKey {
  const r = parseServiceAccountKey(JSON.stringify(KEY_JSON));
  if (!r.ok) throw new Error(r.message);
  return r.key;
}

const b64url = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
const jwtWith = (claims: object) => `${b64url({ alg: "RS256" })}.${b64url(claims)}.c2ln`;

describe("service account key", () => {
  it("reads the fields of a key as IAM gives it", () => {
    const key = parsedKey();
    expect(key).toMatchObject({
      clientEmail: KEY_JSON.client_email,
      privateKeyId: "kid1",
      tokenUri: KEY_JSON.token_uri,
    });
    expect(key.privateKeyDer[0]).toBe(0x30);
  });

  it.each([
    ["not JSON", "{", /is not JSON/],
    ["not a service account", JSON.stringify({ ...KEY_JSON, type: "authorized_user" }), /has type "authorized_user"/],
    ["no client_email", JSON.stringify({ ...KEY_JSON, client_email: "" }), /has no client_email/],
    [
      "an http token_uri elsewhere",
      JSON.stringify({ ...KEY_JSON, token_uri: "http://evil.example/token" }),
      /not https/,
    ],
    [
      "a PKCS#1 key",
      JSON.stringify({ ...KEY_JSON, private_key: privateKey.export({ type: "pkcs1", format: "pem" }).toString() }),
      /not a PEM `-----BEGIN PRIVATE KEY-----` block/,
    ],
    [
      "an EC key",
      JSON.stringify({
        ...KEY_JSON,
        private_key: generateKeyPairSync("ec", { namedCurve: "P-256" })
          .privateKey.export({ type: "pkcs8", format: "pem" })
          .toString(),
      }),
      /not an RSA key/,
    ],
  ])("refuses %s with a message that does not quote the key", (_what, json, message) => {
    const r = parseServiceAccountKey(json);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.message).toMatch(message);
    expect(r.message).not.toContain(PEM.split("\n")[1]);
  });

  it("allows an http token_uri on a loopback host (local tests)", () => {
    expect(parseServiceAccountKey(JSON.stringify({ ...KEY_JSON, token_uri: "http://127.0.0.1:9/token" })).ok).toBe(
      true,
    );
  });

  it("never throws, whatever the text", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(typeof parseServiceAccountKey(s).ok).toBe("boolean");
      }),
    );
  });
});

describe("the assertion", () => {
  it("is an RS256 JWT with Google's ID token claims, verifiable with the key's public half", async () => {
    const key = parsedKey();
    const nowMs = 1_700_000_000_500;
    const jwt = await signIdTokenAssertion(key, await importSigningKey(key), "https://runner.a.run.app", nowMs);
    const [h, c, sig] = jwt.split(".");
    expect(JSON.parse(Buffer.from(h!, "base64url").toString())).toEqual({ alg: "RS256", typ: "JWT", kid: "kid1" });
    expect(jwtClaims(jwt)).toEqual({
      iss: KEY_JSON.client_email,
      sub: KEY_JSON.client_email,
      aud: KEY_JSON.token_uri,
      iat: 1_700_000_000,
      exp: 1_700_000_000 + ASSERTION_LIFETIME_S,
      target_audience: "https://runner.a.run.app",
    });
    const verify = createVerify("RSA-SHA256");
    verify.update(`${h}.${c}`);
    expect(verify.verify(publicKey, Buffer.from(sig!, "base64url"))).toBe(true);
  });

  it("goes in a form body with the JWT bearer grant", () => {
    const form = new URLSearchParams(idTokenRequestBody("a.b.c"));
    expect(form.get("grant_type")).toBe(JWT_BEARER_GRANT);
    expect(form.get("assertion")).toBe("a.b.c");
  });
});

describe("the token endpoint's answer", () => {
  it("gives the ID token and its expiry from its own exp claim", () => {
    const idToken = jwtWith({ aud: "x", exp: 1_700_003_600 });
    expect(parseIdTokenAnswer(200, JSON.stringify({ id_token: idToken }))).toEqual({
      ok: true,
      idToken,
      expiresAtMs: 1_700_003_600_000,
    });
  });

  it("says what the endpoint said when it refused", () => {
    const r = parseIdTokenAnswer(400, JSON.stringify({ error: "invalid_grant", error_description: "Invalid JWT" }));
    expect(r).toEqual({ ok: false, message: "token endpoint answered HTTP 400, invalid_grant: Invalid JWT" });
  });

  it("refuses a body that is not JSON, or a token without exp", () => {
    expect(parseIdTokenAnswer(503, "<html>")).toMatchObject({ ok: false, message: expect.stringMatching(/not JSON/) });
    expect(parseIdTokenAnswer(200, JSON.stringify({ id_token: jwtWith({ aud: "x" }) }))).toMatchObject({
      ok: false,
      message: expect.stringMatching(/numeric exp/),
    });
  });

  it("never throws, whatever the status and body", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), fc.oneof(fc.string(), fc.json()), (status, body) => {
        expect(typeof parseIdTokenAnswer(status, body).ok).toBe("boolean");
      }),
    );
  });
});

describe("IdTokenCache", () => {
  const opts = { refreshAheadMs: 300_000, minValidityMs: 30_000, retryMinMs: 500, retryMaxMs: 10_000 };
  const HOUR = 3_600_000;

  it("fetches once when empty; callers meanwhile wait for that fetch", () => {
    const c = new IdTokenCache(opts);
    expect(c.decide(0)).toEqual({ token: undefined, fetch: true, error: undefined });
    c.fetchStarted();
    expect(c.decide(1)).toEqual({ token: undefined, fetch: false, error: undefined });
    c.fetched("t1", HOUR);
    expect(c.decide(2)).toEqual({ token: "t1", fetch: false, error: undefined });
    expect(c.fetches).toBe(1);
  });

  it("refreshes ahead of expiry while still handing out the token, one fetch at a time", () => {
    const c = new IdTokenCache(opts);
    c.fetchStarted();
    c.fetched("t1", HOUR);
    expect(c.decide(HOUR - 300_001).fetch).toBe(false);
    expect(c.decide(HOUR - 300_000)).toEqual({ token: "t1", fetch: true, error: undefined });
    c.fetchStarted();
    expect(c.decide(HOUR - 299_000)).toEqual({ token: "t1", fetch: false, error: undefined });
    c.fetched("t2", 2 * HOUR);
    expect(c.decide(HOUR - 298_000).token).toBe("t2");
  });

  it("never hands out a token about to expire", () => {
    const c = new IdTokenCache(opts);
    c.fetchStarted();
    c.fetched("t1", HOUR);
    expect(c.decide(HOUR - 30_001).token).toBe("t1");
    expect(c.decide(HOUR - 30_000).token).toBeUndefined();
  });

  it("backs off after failures (doubling, capped) and says why while it has nothing", () => {
    const c = new IdTokenCache(opts);
    c.fetchStarted();
    expect(c.fetchFailed("endpoint down", 1000)).toBe(500);
    expect(c.decide(1499)).toEqual({ token: undefined, fetch: false, error: "endpoint down" });
    expect(c.decide(1500).fetch).toBe(true);
    c.fetchStarted();
    expect(c.fetchFailed("endpoint down", 1500)).toBe(1000);
    for (let i = 0; i < 10; i++) {
      c.fetchStarted();
      c.fetchFailed("endpoint down", 2000);
    }
    c.fetchStarted();
    expect(c.fetchFailed("endpoint down", 3000)).toBe(10_000);
    c.fetchStarted();
    c.fetched("t", 3000 + HOUR);
    expect(c.decide(3001)).toEqual({ token: "t", fetch: false, error: undefined });
  });

  it("keeps handing out a valid token while a refresh fails", () => {
    const c = new IdTokenCache(opts);
    c.fetchStarted();
    c.fetched("t1", HOUR);
    const at = HOUR - 200_000;
    c.fetchStarted();
    c.fetchFailed("endpoint down", at);
    expect(c.decide(at + 1)).toEqual({ token: "t1", fetch: false, error: undefined });
    expect(c.decide(at + 500).fetch).toBe(true);
  });

  it("never runs two fetches at once nor hands out a token about to expire, for any sequence of calls", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dtMs: fc.nat(120_000), outcome: fc.constantFrom("ok", "fail", "pending") })),
        (steps) => {
          const c = new IdTokenCache(opts);
          let now = 0;
          let inFlight = false;
          let expiresAtMs = 0;
          for (const s of steps) {
            now += s.dtMs;
            const d = c.decide(now);
            if (d.fetch) {
              expect(inFlight).toBe(false);
              c.fetchStarted();
              inFlight = true;
            }
            if (inFlight && s.outcome !== "pending") {
              inFlight = false;
              if (s.outcome === "ok") c.fetched("t", (expiresAtMs = now + HOUR));
              else c.fetchFailed("x", now);
            }
            if (d.token !== undefined) expect(expiresAtMs - now).toBeGreaterThan(opts.minValidityMs);
          }
        },
      ),
    );
  });
});
