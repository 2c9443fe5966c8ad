/** Twilio's CallSid format, as the edge checks it on every route that names a call. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { callSidProblem, isCallSid } from "../src/index.js";

const hex = fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: 32, maxLength: 32 });

describe("CallSid", () => {
  it("is CA followed by 32 hex digits", () => {
    fc.assert(
      fc.property(hex, (h) => {
        expect(isCallSid("CA" + h)).toBe(true);
      }),
    );
    expect(callSidProblem("CA" + "0".repeat(32))).toBeUndefined();
  });

  it("refuses other prefixes, other lengths, other characters and names", () => {
    const h = "0123456789abcdef0123456789abcdef";
    for (const text of [
      "",
      "CA1",
      "CAnostream",
      "stats",
      "record",
      "MZ" + h,
      "ca" + h,
      "CA" + h + "0",
      "CA" + h.slice(1),
    ])
      expect(isCallSid(text), text).toBe(false);
    expect(isCallSid("CA" + h.slice(1) + "g")).toBe(false);
    expect(isCallSid(`CA${h}\n`)).toBe(false);
  });

  it("says what is wrong, with long input cut short", () => {
    expect(callSidProblem("stats")).toBe('CallSid "stats" is not a Twilio CallSid (CA followed by 32 hex digits)');
    expect(callSidProblem("x".repeat(500))).toMatch(/^CallSid "x{48}"\.\.\. is not a Twilio CallSid/);
  });

  it("never throws on any text", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(isCallSid(text)).toBe(callSidProblem(text) === undefined);
      }),
    );
  });
});
