/** The whisper engine's fast profile: partials without punctuation, words kept whole. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WHISPER_PROFILE, withoutPunctuation } from "../src/engines/whisper/partial-text.js";

describe("withoutPunctuation", () => {
  it("drops sentence punctuation at the edges of words", () => {
    expect(withoutPunctuation(" Please enter your password, followed by the pound key.")).toBe(
      "Please enter your password followed by the pound key",
    );
    expect(withoutPunctuation('Is it "done"? Yes... (maybe)!')).toBe("Is it done Yes maybe");
    expect(withoutPunctuation("שלום, מה שלומך?")).toBe("שלום מה שלומך");
  });

  it("keeps marks inside or part of a word: apostrophes, gershayim, geresh, hyphens, decimals", () => {
    expect(withoutPunctuation("don't re-record 3.5 צה\"ל צה״ל ג׳")).toBe("don't re-record 3.5 צה\"ל צה״ל ג׳");
  });

  it("drops a word that is only punctuation", () => {
    expect(withoutPunctuation("yes . no ...")).toBe("yes no");
    expect(withoutPunctuation(" ... ")).toBe("");
  });

  it("keeps a stable prefix a prefix of its text, word by word", () => {
    const word = fc.stringMatching(/^[a-zא-ת'".,?!-]{1,8}$/);
    fc.assert(
      fc.property(fc.array(word, { maxLength: 8 }), fc.array(word, { maxLength: 8 }), (stable, tail) => {
        const s = withoutPunctuation(stable.join(" "));
        const t = withoutPunctuation([...stable, ...tail].join(" "));
        expect(t.startsWith(s)).toBe(true);
        expect(withoutPunctuation(t)).toBe(t); // idempotent
      }),
    );
  });

  it("is the profile the engine states: punctuation off", () => {
    expect(WHISPER_PROFILE).toEqual({ name: "fast", punctuation: false });
  });
});
