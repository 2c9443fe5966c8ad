import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeForWer, pooledWer, transcriptErrors, werWords, wordErrors } from "../src/index.js";

describe("normalizeForWer, Hebrew", () => {
  it("drops niqqud: the pointed and plain transcripts of a SASPEECH line are the same words", () => {
    const plain = "היי, אני שאול אמסטרדמסקי ואתם מאזינים לחיות כיס.";
    const pointed = "הַיי, אֲנִי שָׁאוּל אַמֶסְטֶרְדְמְסְקִי וְאַתֶּם מַאֲזִינִים לִחְיוֹת כִּיס.";
    expect(normalizeForWer(pointed, "he")).toBe(normalizeForWer(plain, "he"));
    expect(normalizeForWer(plain, "he")).toBe("היי אני שאול אמסטרדמסקי ואתם מאזינים לחיות כיס");
  });

  it("deletes gershayim and geresh, Hebrew or ASCII, so an acronym stays one word", () => {
    expect(normalizeForWer("צה״ל", "he")).toBe("צהל");
    expect(normalizeForWer('צה"ל', "he")).toBe("צהל");
    expect(normalizeForWer("ג׳ירפה", "he")).toBe("גירפה");
    expect(normalizeForWer("ג'ירפה", "he")).toBe("גירפה");
  });

  it("splits at maqaf as at a hyphen", () => {
    expect(normalizeForWer("בית־ספר", "he")).toBe("בית ספר");
    expect(normalizeForWer("בית-ספר", "he")).toBe("בית ספר");
  });

  it("removes bidi and zero-width marks without splitting words", () => {
    expect(normalizeForWer("\u200Fשלום\u200B עולם\u202C\uFEFF", "he")).toBe("שלום עולם");
  });

  it("turns punctuation into spaces and folds whitespace", () => {
    expect(normalizeForWer("  שלום,\tעולם!  מה\n\nנשמע?… ", "he")).toBe("שלום עולם מה נשמע");
    expect(normalizeForWer("בבקשה.נרשם", "he")).toBe("בבקשה נרשם");
  });

  it("drops bracketed annotations", () => {
    expect(normalizeForWer("שלום [צחוק] עולם <unk>", "he")).toBe("שלום עולם");
  });
});

describe("normalizeForWer, English", () => {
  it("lower-cases and removes punctuation", () => {
    expect(normalizeForWer("That agent is already logged on.  Please enter", "en")).toBe(
      "that agent is already logged on please enter",
    );
  });

  it("writes number words as digits, and leaves digits alone", () => {
    expect(normalizeForWer("Press one to mute, two to lock", "en")).toBe("press 1 to mute 2 to lock");
    expect(normalizeForWer("Press 1 to mute, 2 to lock", "en")).toBe("press 1 to mute 2 to lock");
    expect(normalizeForWer("twenty one", "en")).toBe("21");
    expect(normalizeForWer("one hundred and five dollars", "en")).toBe("105 dollars");
    expect(normalizeForWer("two thousand twenty six", "en")).toBe("2026");
    expect(normalizeForWer("1,000 calls", "en")).toBe("1000 calls");
  });

  it("reads a string of digit words as separate digits", () => {
    expect(normalizeForWer("one two three", "en")).toBe("1 2 3");
    expect(normalizeForWer("four or six", "en")).toBe("4 or 6");
  });

  it("spells out titles, so Mr. matches mister", () => {
    expect(normalizeForWer("Mr. John Dashwood", "en")).toBe("mister john dashwood");
  });

  it("keeps a possessive one word", () => {
    expect(normalizeForWer("Waldo's premier provider", "en")).toBe("waldos premier provider");
  });

  it("writes contractions out, so I'm matches I am", () => {
    expect(normalizeForWer("I'm sorry, we don’t know", "en")).toBe(normalizeForWer("I am sorry, we do not know", "en"));
    expect(normalizeForWer("You're, we've, they'll, it's", "en")).toBe("you are we have they will it is");
    expect(normalizeForWer("won't, can't, let's", "en")).toBe("will not can not let us");
  });

  it("joins a hyphenated compound, so re-record matches rerecord", () => {
    expect(normalizeForWer("Press 1 to re-record", "en")).toBe(normalizeForWer("press one to rerecord", "en"));
    expect(normalizeForWer("well - known", "en")).toBe("well known"); // a dash between words is not a hyphen
  });

  it("reads the keypad's symbols", () => {
    expect(normalizeForWer("Press * to cancel, # to confirm", "en")).toBe("press star to cancel pound to confirm");
    expect(normalizeForWer("press the star key", "en")).toBe("press the star key");
  });

  it("leaves Hebrew text's hyphens and symbols to the Hebrew rules", () => {
    expect(normalizeForWer("תל-אביב *", "he")).toBe("תל אביב");
  });
});

describe("wordErrors", () => {
  it("counts nothing for identical lists", () => {
    expect(wordErrors(["a", "b"], ["a", "b"])).toEqual({
      substitutions: 0,
      deletions: 0,
      insertions: 0,
      referenceWords: 2,
    });
  });

  it("counts a substitution, a deletion and an insertion", () => {
    expect(wordErrors(["a", "b", "c"], ["a", "x", "c", "d"])).toMatchObject({
      substitutions: 1,
      deletions: 0,
      insertions: 1,
    });
    expect(wordErrors(["a", "b", "c"], ["a", "c"])).toMatchObject({ substitutions: 0, deletions: 1, insertions: 0 });
    expect(wordErrors([], ["a"])).toMatchObject({ insertions: 1, referenceWords: 0 });
  });

  it("is the Levenshtein distance, never more than the longer list", () => {
    const word = fc.constantFrom("a", "b", "c", "d");
    fc.assert(
      fc.property(fc.array(word, { maxLength: 12 }), fc.array(word, { maxLength: 12 }), (r, h) => {
        const e = wordErrors(r, h);
        const edits = e.substitutions + e.deletions + e.insertions;
        expect(edits).toBe(levenshtein(r, h));
        expect(edits).toBeLessThanOrEqual(Math.max(r.length, h.length));
        expect(e.deletions - e.insertions).toBe(r.length - h.length);
      }),
    );
  });

  it("counts the same number of edits both ways", () => {
    const word = fc.constantFrom("a", "b", "c");
    fc.assert(
      fc.property(fc.array(word, { maxLength: 10 }), fc.array(word, { maxLength: 10 }), (r, h) => {
        const ab = wordErrors(r, h);
        const ba = wordErrors(h, r);
        expect(ab.substitutions + ab.deletions + ab.insertions).toBe(ba.substitutions + ba.deletions + ba.insertions);
      }),
    );
  });
});

describe("normalisation properties", () => {
  const hebrewLetter = fc.integer({ min: 0x05d0, max: 0x05ea }).map((c) => String.fromCharCode(c));
  const point = fc.integer({ min: 0x05b0, max: 0x05bc }).map((c) => String.fromCharCode(c));
  const hebrewWord = fc.array(fc.tuple(hebrewLetter, fc.option(point, { nil: "" })), { minLength: 1, maxLength: 6 });
  const separator = fc.constantFrom(" ", "  ", "\t", ", ", ". ", "\n", " ־ ", "? ");

  it("is idempotent", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), fc.constantFrom("he", "en"), (s, lang) => {
        const once = normalizeForWer(s, lang as "he" | "en");
        expect(normalizeForWer(once, lang as "he" | "en")).toBe(once);
      }),
    );
  });

  it("gives Hebrew words with or without niqqud, under any punctuation and spacing, WER 0", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(hebrewWord, separator), { minLength: 1, maxLength: 8 }), (words) => {
        const pointed = words.map(([w, sep]) => w.map(([l, p]) => l + p).join("") + sep).join("");
        const plain = words.map(([w]) => w.map(([l]) => l).join("")).join(" ");
        expect(transcriptErrors(plain, pointed, "he")).toMatchObject({ substitutions: 0, deletions: 0, insertions: 0 });
      }),
    );
  });

  it("never leaves an empty word or a space at either end", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        for (const w of werWords(s, "he")) expect(w).not.toBe("");
        const n = normalizeForWer(s, "en");
        expect(n).toBe(n.trim());
      }),
    );
  });
});

describe("pooledWer", () => {
  it("is all edits over all reference words", () => {
    const a = transcriptErrors("please enter your password", "please enter you password", "en");
    const b = transcriptErrors("goodbye", "goodbye", "en");
    expect(pooledWer([a, b])).toBeCloseTo(1 / 5);
  });

  it("is 0 with nothing to compare and Infinity for words against an empty reference", () => {
    expect(pooledWer([])).toBe(0);
    expect(pooledWer([transcriptErrors("", "hello", "en")])).toBe(Infinity);
  });
});

function levenshtein(a: readonly string[], b: readonly string[]): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i || j));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}
