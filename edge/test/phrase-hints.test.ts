/**
 * Phrase hints from the call (issue 14): the edge's PHRASES_ACCOUNTS and PHRASES_NUMBERS, checked
 * at start; a called number's hints in the voice webhook's TwiML (`ozen_phrases`); the account's
 * and the stream's own in the relay `start.phrases` the runner gets. An attacker's hints (too
 * many, too long, control characters) are refused and counted while the call goes on, and a hint
 * parameter without a valid `ozen_token` reaches nothing: the stream is refused.
 */
import { createHmac, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_CALL_PHRASES, SettingError } from "@ozen/shared";
import { newIdentity, requestTwiml } from "../../tools/src/simulator.js";
import { callPhrasesOf, loadPhraseHints, numberPhraseParameters } from "../src/call/phrase-config.js";
import { AUTH_TOKEN, PUBLIC_BASE_URL, TwilioCall, startRunner, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";

// the simulator's webhook: every call is from this account, to this number
const ACCOUNT = "AC" + "0".repeat(32);
const CALLED = "+972500000001";

function settingError(env: Record<string, string>): SettingError {
  try {
    loadPhraseHints(env);
  } catch (e) {
    if (e instanceof SettingError) return e;
    throw e;
  }
  throw new Error("expected a SettingError");
}

describe("PHRASES_ACCOUNTS and PHRASES_NUMBERS", () => {
  it("reads hints per account and per number", () => {
    const c = loadPhraseHints({
      PHRASES_ACCOUNTS: JSON.stringify({ [ACCOUNT]: ["אוזן", "Twilio"] }),
      PHRASES_NUMBERS: JSON.stringify({ [CALLED]: ["Aoife Nakagawa"] }),
    });
    expect(c.byAccount.get(ACCOUNT)).toEqual(["אוזן", "Twilio"]);
    expect(numberPhraseParameters(c, CALLED)).toEqual({ ozen_phrases: "Aoife Nakagawa" });
    expect(numberPhraseParameters(c, "+15550000000")).toEqual({});
    expect(numberPhraseParameters(c, null)).toEqual({});
  });

  it("refuses what is not JSON, or not an object, naming the setting", () => {
    expect(settingError({ PHRASES_ACCOUNTS: "[oops" }).message).toBe(
      'PHRASES_ACCOUNTS is not JSON, expected JSON {"AC...": ["phrase", ...], ...}',
    );
    expect(settingError({ PHRASES_NUMBERS: '["a"]' }).setting).toBe("PHRASES_NUMBERS");
  });

  it("refuses a key that is not an AccountSid or an E.164 number", () => {
    expect(settingError({ PHRASES_ACCOUNTS: '{"ac123": ["a"]}' }).message).toBe(
      'PHRASES_ACCOUNTS names "ac123", expected an AccountSid (AC followed by 32 hex digits)',
    );
    expect(settingError({ PHRASES_NUMBERS: '{"0501234567": ["a"]}' }).message).toBe(
      'PHRASES_NUMBERS names "0501234567", expected a number in E.164 (+ and up to 15 digits)',
    );
  });

  it("refuses too many phrases, a phrase too long, a control character or a separator, saying which", () => {
    const many = Array.from({ length: MAX_CALL_PHRASES + 1 }, (_, i) => `p${i}`);
    const tooMany = settingError({ PHRASES_ACCOUNTS: JSON.stringify({ [ACCOUNT]: many }) });
    expect(tooMany.setting).toBe(`PHRASES_ACCOUNTS.${ACCOUNT}`);
    expect(tooMany.message).toContain(`has ${MAX_CALL_PHRASES + 1} phrases, at most ${MAX_CALL_PHRASES}`);
    expect(settingError({ PHRASES_ACCOUNTS: JSON.stringify({ [ACCOUNT]: ["x".repeat(101)] }) }).message).toContain(
      "is 101 characters, at most 100",
    );
    expect(settingError({ PHRASES_NUMBERS: JSON.stringify({ [CALLED]: ["a\u0000b"] }) }).message).toContain(
      "holds a control character (U+0000)",
    );
    expect(settingError({ PHRASES_NUMBERS: JSON.stringify({ [CALLED]: ["a,b"] }) }).message).toContain(
      "holds , or |, which separate phrases",
    );
    expect(settingError({ PHRASES_NUMBERS: JSON.stringify({ [CALLED]: "a,b" }) }).message).toContain(
      "is not a list of phrases",
    );
  });

  it("refuses a number's hints that do not fit a TwiML <Parameter>", () => {
    const long = Array.from({ length: 10 }, (_, i) => `${i}${"y".repeat(59)}`);
    const e = settingError({ PHRASES_NUMBERS: JSON.stringify({ [CALLED]: long }) });
    expect(e.setting).toBe(`PHRASES_NUMBERS.${CALLED}`);
    expect(e.message).toContain("joins to 609 characters, expected at most 487");
  });

  it("a call's hints: the account's, then its own parameter's, each once; a bad parameter adds nothing and says why", () => {
    const c = loadPhraseHints({ PHRASES_ACCOUNTS: JSON.stringify({ [ACCOUNT]: ["אוזן", "Twilio"] }) });
    expect(callPhrasesOf(c, ACCOUNT, "Twilio|Aoife Nakagawa")).toEqual({
      phrases: ["אוזן", "Twilio", "Aoife Nakagawa"],
    });
    expect(callPhrasesOf(c, "AC" + "1".repeat(32), undefined)).toEqual({ phrases: [] });
    expect(callPhrasesOf(c, ACCOUNT, "Aoife\r\nNakagawa")).toEqual({
      phrases: ["אוזן", "Twilio"],
      refused: 'ozen_phrases[0] "AoifeU+000DU+000ANakagawa" holds a control character (U+000D)',
    });
  });
});

/** A token as docs/security.md shows an application minting one for its own TwiML. */
function mintAsDocumented(secret: string, callSid: string, ttlS: number): string {
  const expiresAtS = Math.floor(Date.now() / 1000) + ttlS;
  const nonce = randomBytes(16).toString("base64url");
  const mac = createHmac("sha256", secret)
    .update(`ozen_token:v1:${callSid}:${expiresAtS}:${nonce}`)
    .digest("base64url");
  return `v1.${expiresAtS}.${nonce}.${mac}`;
}

describe("phrase hints on a call (real workerd)", () => {
  let runner: TestRunner;
  let edge: TestEdge;

  beforeAll(async () => {
    runner = await startRunner();
    edge = await startTestEdge({
      RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
      PHRASES_ACCOUNTS: JSON.stringify({ [ACCOUNT]: ["אוזן"] }),
      PHRASES_NUMBERS: JSON.stringify({ [CALLED]: ["Aoife Nakagawa", "Twilio"] }),
    });
  });

  afterAll(async () => {
    await edge?.close();
    await runner?.close();
  });

  /** A call with `parameters` on its start (null: the webhook's), 10 frames of audio; how it ended and its stats. */
  async function callWith(parameters: Record<string, string> | null, identity = newIdentity()) {
    const call = await TwilioCall.dial(edge, { identity, ...(parameters ? { customParameters: parameters } : {}) });
    call.sendText(call.script.connected());
    call.sendText(call.script.start());
    call.sendMedia(testAudio(10, 9));
    call.sendText(call.script.stop());
    const code = await call.closed;
    const stats = await waitFor("the call's end", async () => {
      const s = await edge.callStats(call.callSid);
      return s.state === "ended" && s;
    });
    return { code, stats, callSid: call.callSid };
  }

  it("the webhook's TwiML carries the called number's hints as ozen_phrases, beside the token", async () => {
    const twiml = await requestTwiml({
      edgeUrl: edge.url,
      publicUrl: PUBLIC_BASE_URL,
      authToken: AUTH_TOKEN,
      identity: newIdentity(),
    });
    expect(Object.keys(twiml.parameters).sort()).toEqual(["ozen_phrases", "ozen_token"]);
    expect(twiml.parameters["ozen_phrases"]).toBe("Aoife Nakagawa,Twilio");
  });

  it("the runner's start has the account's hints, then the number's", async () => {
    const { code, stats, callSid } = await callWith(null);
    expect(code).toBe(1000);
    expect(stats.bad["bad_phrases"]).toBeUndefined();
    await waitFor("the runner session", () => runner.engine.sessionsFor(callSid)[0]);
    expect(runner.engine.sessionFor(callSid).start.phrases).toEqual(["אוזן", "Aoife Nakagawa", "Twilio"]);
  });

  it("takes an application's own ozen_phrases with the token it minted (docs/api.md)", async () => {
    const identity = newIdentity();
    const token = mintAsDocumented(AUTH_TOKEN, identity.callSid, 300);
    const { code, callSid } = await callWith({ ozen_token: token, ozen_phrases: "Siobhan Okonkwo|אוזן" }, identity);
    expect(code).toBe(1000);
    await waitFor("the runner session", () => runner.engine.sessionsFor(callSid)[0]);
    expect(runner.engine.sessionFor(callSid).start.phrases).toEqual(["אוזן", "Siobhan Okonkwo"]);
  });

  for (const [what, hostile] of [
    ["control characters", "Aoife\u0000Nakagawa"],
    ["more phrases than a call may have", Array.from({ length: MAX_CALL_PHRASES + 1 }, (_, i) => `p${i}`).join(",")],
    ["a phrase over 100 characters", "z".repeat(101)],
    ["a value longer than a <Parameter>", "a,".repeat(5000)],
  ] as const) {
    it(`refuses ozen_phrases with ${what} (counted as bad_phrases); the call goes on with the account's hints`, async () => {
      const identity = newIdentity();
      const token = mintAsDocumented(AUTH_TOKEN, identity.callSid, 300);
      const { code, stats, callSid } = await callWith({ ozen_token: token, ozen_phrases: hostile }, identity);
      expect(code).toBe(1000);
      expect(stats.bad["bad_phrases"]).toBe(1);
      await waitFor("the runner session to end", () => runner.engine.sessionsFor(callSid)[0]?.ended);
      expect(runner.engine.samplesFed(callSid)).toBe(10 * 160);
      expect(runner.engine.sessionFor(callSid).start.phrases).toEqual(["אוזן"]);
    });
  }

  it("a hint parameter forged without a valid ozen_token changes nothing: the stream is refused, the runner gets no call", async () => {
    for (const token of [
      undefined,
      "v1.1.AAAAAAAAAAAAAAAAAAAAAA.forged",
      mintAsDocumented("not-the-secret", "CA0", 300),
    ]) {
      const { code, stats, callSid } = await callWith({
        ...(token ? { ozen_token: token } : {}),
        ozen_phrases: "Attacker Chosen",
      });
      expect(code).toBe(1008);
      expect(stats.bad["bad_token"]).toBe(1);
      expect(stats.relay.connects).toBe(0);
      expect(runner.engine.sessionsFor(callSid)).toEqual([]);
    }
  });
});
