import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mergeFragments, normalizeForWer, normalizeTranscriptText, polishFinal } from "../src/index.js";

describe("polishFinal in Hebrew", () => {
  const he = (raw: string) => polishFinal(raw, { language: "he-IL" });

  it("collapses whitespace and trims", () => {
    expect(he("  שלום   לך \t חבר ")).toBe("שלום לך חבר.");
  });

  it("ends a statement with a full stop", () => {
    expect(he("אני רוצה לקבוע תור")).toBe("אני רוצה לקבוע תור.");
  });

  it.each([
    "מה",
    "מי",
    "איפה",
    "מתי",
    "למה",
    "איך",
    "האם",
    "כמה",
    "לאן",
    "מאיפה",
    "מדוע",
    "איזה",
    "איזו",
    "אילו",
    "כיצד",
  ])("ends a sentence opening with %s with a question mark", (word) => {
    expect(he(`${word} זה`)).toBe(`${word} זה?`);
  });

  it("reads a question word after the prefix ו", () => {
    expect(he("ומתי אתם פתוחים")).toBe("ומתי אתם פתוחים?");
  });

  it("reads a question word after the prefix ש", () => {
    expect(he("שכמה זמן זה לוקח")).toBe("שכמה זמן זה לוקח?");
  });

  it("does not take ש-words that are other words for questions (שמי = my name)", () => {
    expect(he("שמי דנה כהן")).toBe("שמי דנה כהן.");
    expect(he("שלמה מדבר")).toBe("שלמה מדבר.");
    expect(he("שאיפה גדולה")).toBe("שאיפה גדולה.");
  });

  it("does not take a word that merely starts with a question word for one", () => {
    expect(he("מהר בבקשה")).toBe("מהר בבקשה.");
  });

  it("decides question or statement by the last sentence", () => {
    expect(he("שלום. מה שלומך")).toBe("שלום. מה שלומך?");
    expect(he("מה? אני לא שומע")).toBe("מה? אני לא שומע.");
  });

  it.each([
    ["כבר יש נקודה.", "כבר יש נקודה."],
    ["באמת?", "באמת?"],
    ["וואו!", "וואו!"],
    ["רגע…", "רגע…"],
  ])("leaves an existing sentence end alone: %s", (raw, out) => {
    expect(he(raw)).toBe(out);
  });

  it("removes the space before punctuation and puts one after it", () => {
    expect(he("אני רוצה לקבוע תור ,בבקשה")).toBe("אני רוצה לקבוע תור, בבקשה.");
    expect(he("כן ;לא :אולי")).toBe("כן; לא: אולי.");
    expect(he("כן !לא")).toBe("כן! לא.");
  });

  it("replaces a trailing comma with the sentence end", () => {
    expect(he("תודה רבה ,")).toBe("תודה רבה.");
  });

  it("never joins two numbers a spaced mark stood between", () => {
    expect(he("עם 42 ,100 איש")).toBe("עם 42, 100 איש.");
    expect(he("שלוש .חמש")).toBe("שלוש. חמש.");
  });

  it("keeps numbers whole", () => {
    expect(he("זה עולה 3.5 שקלים")).toBe("זה עולה 3.5 שקלים.");
    expect(he("בשעה 10:30 ,עם 1,000 איש")).toBe("בשעה 10:30, עם 1,000 איש.");
  });

  it("keeps geresh and gershayim, ASCII and Hebrew", () => {
    expect(he("אכלתי צ'יפס בצה\"ל")).toBe("אכלתי צ'יפס בצה\"ל.");
    expect(he("אכלתי צ׳יפס בצה״ל")).toBe("אכלתי צ׳יפס בצה״ל.");
    expect(he('עולה 20 ש"ח')).toBe('עולה 20 ש"ח.');
  });

  it("strips bidi control marks", () => {
    expect(he("\u200fשלום\u200e \u202bלך\u202c\u2067\u2069")).toBe("שלום לך.");
  });

  it("leaves Hebrew letters as they are (no case)", () => {
    expect(he("שלום")).toBe("שלום.");
  });

  it("capitalises an English word that opens a Hebrew final", () => {
    expect(he("zoom לא עובד לי")).toBe("Zoom לא עובד לי.");
  });

  it("reads an English question in a Hebrew call as one", () => {
    expect(he("what time is it")).toBe("What time is it?");
  });

  it("polishes nothing into nothing", () => {
    expect(he("   ")).toBe("");
    expect(he("\u200f")).toBe("");
    expect(he(" . ")).toBe("");
  });
});

describe("polishFinal: the playbook's comma after a Hebrew greeting", () => {
  const he = (raw: string) => polishFinal(raw, { language: "he-IL" });

  it("merges the playbook's own example with a comma", () => {
    expect(he("שלום אני")).toBe("שלום, אני.");
  });

  it.each([
    ["שלום אני דני", "שלום, אני דני."],
    ["היי אני רוצה לקבוע תור", "היי, אני רוצה לקבוע תור."],
    ["הי זה דני", "הי, זה דני."],
    ["הלו אתה שומע אותי", "הלו, אתה שומע אותי."],
    ["אהלן אני מתקשר לגבי ההזמנה", "אהלן, אני מתקשר לגבי ההזמנה."],
    ["בוקר טוב אני רוצה לבטל", "בוקר טוב, אני רוצה לבטל."],
    ["ערב טוב רציתי לשאול", "ערב טוב, רציתי לשאול."],
    ["צהריים טובים שמי רונית", "צהריים טובים, שמי רונית."],
    ["סליחה אפשר לדבר עם נציג", "סליחה, אפשר לדבר עם נציג."],
    ["תודה זה הכל", "תודה, זה הכל."],
  ])("puts a comma after a greeting that opens a clause: %s", (raw, out) => {
    expect(he(raw)).toBe(out);
  });

  it.each([
    ["שלום לך אני דני", "שלום לך, אני דני."],
    ["תודה רבה אני אחכה", "תודה רבה, אני אחכה."],
    ["בוקר טוב לכולם אנחנו מתחילים", "בוקר טוב לכולם, אנחנו מתחילים."],
  ])("puts the comma after the greeting's own tail: %s", (raw, out) => {
    expect(he(raw)).toBe(out);
  });

  it.each([
    ["היי דני אני בדרך", "היי דני, אני בדרך."],
    ["שלום רונית כהן אני מהמרפאה", "שלום רונית כהן, אני מהמרפאה."],
  ])("puts the comma after a vocative that follows the greeting: %s", (raw, out) => {
    expect(he(raw)).toBe(out);
  });

  it("ends a question after a greeting with a question mark", () => {
    expect(he("היי מה נשמע")).toBe("היי, מה נשמע?");
    expect(he("שלום דני איך אתה")).toBe("שלום דני, איך אתה?");
    expect(he("שלום, מה שלומך")).toBe("שלום, מה שלומך?");
  });

  it.each([
    "שלום לך",
    "תודה רבה",
    "שלום",
    "בוקר טוב",
    "ערב טוב לכולם",
    "שלום רב",
    "תודה על הכל אני",
    "סליחה על האיחור",
    "תודה שהתקשרת אלינו",
    "תודה שאתה פה",
    "היי דני",
    "הילד אני",
    "שלומי אני פה",
  ])("adds no comma where none belongs: %s", (raw) => {
    expect(he(raw)).not.toContain(",");
  });

  it("touches only a greeting that opens a sentence", () => {
    expect(he("אמרתי לו שלום אני הולך")).toBe("אמרתי לו שלום אני הולך.");
    expect(he("כן. שלום אני דני")).toBe("כן. שלום, אני דני.");
  });

  it("does not look past two words for the clause", () => {
    expect(he("שלום דני רונית ויוסי אני")).toBe("שלום דני רונית ויוסי אני.");
  });

  it("leaves a greeting that already has its punctuation alone", () => {
    expect(he("שלום, אני דני")).toBe("שלום, אני דני.");
    expect(he("שלום! אני דני")).toBe("שלום! אני דני.");
    expect(he("היי דני, אני בדרך")).toBe("היי דני, אני בדרך.");
  });

  it("is Hebrew only", () => {
    expect(polishFinal("שלום אני דני", { language: "en-US" })).toBe("שלום אני דני.");
  });
});

describe("polishFinal in English", () => {
  const en = (raw: string) => polishFinal(raw, { language: "en-US" });

  it("capitalises the first letter and ends a statement with a full stop", () => {
    expect(en("thanks for calling")).toBe("Thanks for calling.");
  });

  it("ends a wh-question with a question mark", () => {
    expect(en("what time do you open")).toBe("What time do you open?");
  });

  it("ends an auxiliary-before-subject question with a question mark", () => {
    expect(en("can you hear me")).toBe("Can you hear me?");
    expect(en("is the store open")).toBe("Is the store open?");
  });

  it("does not take an imperative for a question", () => {
    expect(en("do it now")).toBe("Do it now.");
    expect(en("have a nice day")).toBe("Have a nice day.");
  });

  it("does not capitalise a camel-cased brand", () => {
    expect(en("iPhone is broken")).toBe("iPhone is broken.");
  });

  it("leaves dots inside names and numbers alone", () => {
    expect(en("go to google.com for 2.5 hours")).toBe("Go to google.com for 2.5 hours.");
  });

  it("puts a space after a full stop before a capital", () => {
    expect(en("yes.Thanks")).toBe("Yes. Thanks.");
  });

  it("keeps an apostrophe inside a word", () => {
    expect(en("i don't know")).toBe("I don't know.");
  });
});

describe("polishFinal options", () => {
  it("accepts the language as a plain string", () => {
    expect(polishFinal("מה השעה", "he-IL")).toBe("מה השעה?");
  });

  it("defaults to Hebrew", () => {
    expect(polishFinal("מה השעה")).toBe("מה השעה?");
  });

  it("reads iw-IL as Hebrew", () => {
    expect(polishFinal("איפה אתה", { language: "iw-IL" })).toBe("איפה אתה?");
  });

  it("adds only a full stop for a language it has no question words for", () => {
    expect(polishFinal("qué hora es", { language: "es-ES" })).toBe("Qué hora es.");
  });
});

describe("mergeFragments", () => {
  it("joins Google's segments with one space, whatever spacing they carry", () => {
    expect(mergeFragments(["to be", " or not to be"])).toBe("to be or not to be");
    expect(mergeFragments(["to be ", "  or not"])).toBe("to be or not");
    expect(mergeFragments(["שלום", "עולם"])).toBe("שלום עולם");
  });

  it("skips empty segments", () => {
    expect(mergeFragments(["", " ", "שלום", ""])).toBe("שלום");
  });

  it("normalises text the way the policy compares it", () => {
    expect(normalizeTranscriptText(" \u200fשלום\n\n לך ")).toBe("שלום לך");
  });
});

describe("polishFinal properties", () => {
  const piece = fc.constantFrom(
    "שלום",
    "מה",
    "ומה",
    "איפה",
    "צ'יפס",
    'צה"ל',
    "3.5",
    "10:30",
    "hello",
    "what",
    "is",
    "it",
    ",",
    ".",
    "?",
    "!",
    ";",
    ":",
    "…",
    "\u200f",
    "\u202b",
  );
  const raw = fc
    .array(fc.tuple(piece, fc.constantFrom("", " ", "  ", "\t")), { maxLength: 12 })
    .map((parts) => parts.map(([p, s]) => p + s).join(""));
  const language = fc.constantFrom("he-IL", "en-US", "fr-FR");

  it("is idempotent", () => {
    fc.assert(
      fc.property(raw, language, (text, lang) => {
        const once = polishFinal(text, { language: lang });
        expect(polishFinal(once, { language: lang })).toBe(once);
      }),
    );
  });

  it("returns trimmed text without bidi marks or double spaces, ending a sentence", () => {
    fc.assert(
      fc.property(raw, language, (text, lang) => {
        const out = polishFinal(text, { language: lang });
        if (out === "") return;
        expect(out).toBe(out.trim());
        expect(out).not.toMatch(/\s{2}|[\u200e\u200f\u202a-\u202e\u2066-\u2069]| [,.?!:;]/);
        expect(out).toMatch(/[.?!…][)\]}"'”’»״׳]*$/);
      }),
    );
  });

  it("keeps every letter and digit, in order (case aside)", () => {
    const letters = (s: string) => s.replace(/[^\p{L}\p{N}]/gu, "").toLowerCase();
    fc.assert(
      fc.property(raw, language, (text, lang) => {
        expect(letters(polishFinal(text, { language: lang }))).toBe(letters(text));
      }),
    );
  });

  it("never changes the words WER compares (only punctuation, spacing and case)", () => {
    const greetings = fc.constantFrom(
      "שלום",
      "היי",
      "בוקר",
      "טוב",
      "תודה",
      "רבה",
      "לך",
      "אני",
      "זה",
      "דני",
      "1,000",
      "42",
      "100",
    );
    // numbers around a spaced mark ("42 ,100") are where a polish could join two words into one
    const mixed = fc
      .array(
        fc.tuple(
          fc.oneof(piece, greetings, fc.constantFrom("42 ,100", "7 .250")),
          fc.constantFrom("", " ", "  ", "\t"),
        ),
        {
          maxLength: 12,
        },
      )
      .map((parts) => parts.map(([p, s]) => p + s).join(""));
    fc.assert(
      fc.property(mixed, language, (text, lang) => {
        const werLanguage = lang.startsWith("en") ? "en" : "he";
        expect(normalizeForWer(polishFinal(text, { language: lang }), werLanguage)).toBe(
          normalizeForWer(text, werLanguage),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it("never splits a decimal number", () => {
    fc.assert(
      fc.property(raw, fc.nat(999), fc.nat(99), (text, a, b) => {
        expect(polishFinal(`${text} ${a}.${b} ${text}`)).toContain(`${a}.${b}`);
      }),
    );
  });
});
