import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { equalSecrets } from "../src/index.js";

describe("equalSecrets", () => {
  it("is string equality for any two strings, except that an empty secret matches nothing", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (given, expected) => {
        expect(equalSecrets(given, expected)).toBe(given === expected && expected !== "");
      }),
    );
  });

  it("matches a secret with itself and refuses it with any one code unit changed", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(), fc.integer({ min: 1, max: 0xffff }), (secret, at, delta) => {
        const i = at % secret.length;
        const changed =
          secret.slice(0, i) + String.fromCharCode((secret.charCodeAt(i) + delta) & 0xffff) + secret.slice(i + 1);
        expect(equalSecrets(secret, secret)).toBe(true);
        expect(equalSecrets(changed, secret)).toBe(false);
      }),
    );
  });

  it("refuses a prefix, an extension and a NUL-padded copy of the secret", () => {
    expect(equalSecrets("api-toke", "api-token")).toBe(false);
    expect(equalSecrets("api-tokenX", "api-token")).toBe(false);
    expect(equalSecrets("api-token\0", "api-token")).toBe(false);
    expect(equalSecrets("", "api-token")).toBe(false);
    expect(equalSecrets("", "")).toBe(false);
  });
});
