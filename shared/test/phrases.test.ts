/**
 * Phrase hints (`relay/phrases.ts`): the limits and the `ozen_phrases` parser, for the edge's
 * settings, the stream's parameter (a stranger's input) and the relay wire's `start.phrases`.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_CALL_PHRASES,
  MAX_PHRASES_PARAMETER_CHARS,
  MAX_PHRASE_CHARS,
  checkPhrases,
  encodeControl,
  mergePhrases,
  parseEdgeToRunner,
  parsePhrasesParameter,
  phraseProblem,
  phrasesParameterValue,
} from "../src/index.js";

/** A valid phrase: letters (Latin, Hebrew), digits and inner spaces. */
const phrase = fc
  .array(fc.stringMatching(/^[A-Za-z0-9\u05d0-\u05ea'.-]{1,12}$/), { minLength: 1, maxLength: 4 })
  .map((w) => w.join(" "))
  .filter((p) => p.length <= MAX_PHRASE_CHARS);

describe("phrase hints", () => {
  it("reads back any list of phrases it is given as an ozen_phrases value", () => {
    fc.assert(
      fc.property(fc.array(phrase, { maxLength: 10 }), (phrases) => {
        const value = phrasesParameterValue(phrases);
        fc.pre(value.length <= MAX_PHRASES_PARAMETER_CHARS);
        expect(parsePhrasesParameter(value)).toEqual({ ok: true, phrases });
      }),
    );
  });

  it("takes commas and bars, trims, and drops empty items", () => {
    expect(parsePhrasesParameter(" אוזן | Aoife Nakagawa,, Twilio ,")).toEqual({
      ok: true,
      phrases: ["אוזן", "Aoife Nakagawa", "Twilio"],
    });
    expect(parsePhrasesParameter("")).toEqual({ ok: true, phrases: [] });
  });

  it("never throws and never accepts a control character, whatever the text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 600 }), (raw) => {
        const r = parsePhrasesParameter(raw);
        if (r.ok) {
          expect(r.phrases.length).toBeLessThanOrEqual(MAX_CALL_PHRASES);
          for (const p of r.phrases) expect(phraseProblem(p)).toBeUndefined();
        } else {
          expect(r.message).toMatch(/^ozen_phrases/);
        }
      }),
    );
  });

  it("refuses a control character, saying which", () => {
    expect(parsePhrasesParameter("Aoife\nNakagawa")).toEqual({
      ok: false,
      message: 'ozen_phrases[0] "AoifeU+000ANakagawa" holds a control character (U+000A)',
    });
    expect(parsePhrasesParameter("a\u0000b").ok).toBe(false);
    expect(parsePhrasesParameter("a\u0085b").ok).toBe(false);
    expect(parsePhrasesParameter("a\u2028b").ok).toBe(false);
    expect(parsePhrasesParameter("a\ud800b").ok).toBe(false);
    // Hebrew text with a right-to-left mark is a phrase
    expect(parsePhrasesParameter("\u200fשלום").ok).toBe(true);
  });

  it("refuses more phrases than a call may have", () => {
    const many = Array.from({ length: MAX_CALL_PHRASES + 1 }, (_, i) => `p${i}`).join(",");
    expect(parsePhrasesParameter(many)).toEqual({
      ok: false,
      message: `ozen_phrases has ${MAX_CALL_PHRASES + 1} phrases, at most ${MAX_CALL_PHRASES}`,
    });
  });

  it("refuses a phrase that is too long, and a value longer than a <Parameter> can be", () => {
    expect(parsePhrasesParameter("x".repeat(MAX_PHRASE_CHARS + 1))).toEqual({
      ok: false,
      message: `ozen_phrases[0] "${"x".repeat(24)}..." is ${MAX_PHRASE_CHARS + 1} characters, at most ${MAX_PHRASE_CHARS}`,
    });
    const huge = "ab,".repeat(100_000);
    const r = parsePhrasesParameter(huge);
    expect(r).toEqual({
      ok: false,
      message: `ozen_phrases is ${huge.length} characters, at most ${MAX_PHRASES_PARAMETER_CHARS} (Twilio's <Parameter> limit)`,
    });
  });

  it("checks a list: text, trimmed, no separators, bounded", () => {
    expect(checkPhrases(["a", "b c"], "x")).toEqual({ ok: true, phrases: ["a", "b c"] });
    expect(checkPhrases("a,b", "x")).toEqual({ ok: false, message: "x is not a list of phrases" });
    expect(checkPhrases(["a", 5], "x")).toEqual({ ok: false, message: "x[1] is not text" });
    expect(checkPhrases([" a"], "x")).toEqual({ ok: false, message: 'x[0] " a" has spaces around it' });
    expect(checkPhrases(["a|b"], "x")).toEqual({
      ok: false,
      message: 'x[0] "a|b" holds , or |, which separate phrases',
    });
    expect(checkPhrases([""], "x")).toEqual({ ok: false, message: 'x[0] "" is empty' });
  });

  it("merges lists in order, each phrase once, bounded", () => {
    expect(mergePhrases([["a", "b"], ["b", "c"], []])).toEqual(["a", "b", "c"]);
    expect(mergePhrases([["a", "b", "c"]], 2)).toEqual(["a", "b"]);
  });
});

describe("relay start.phrases", () => {
  const start = {
    type: "start" as const,
    callSid: "CA1",
    streamSid: "MZ1",
    accountSid: "AC1",
    sampleRateHz: 8000,
    encoding: "pcm16le" as const,
    blockMs: 100,
    tracks: ["inbound"],
    customParameters: {},
    resumeFromSeq: 0,
  };

  it("carries the call's phrases, and a start without them still parses", () => {
    const r = parseEdgeToRunner(encodeControl({ ...start, phrases: ["Aoife Nakagawa", "אוזן"] }));
    expect(r.ok && r.message.type === "start" && r.message.phrases).toEqual(["Aoife Nakagawa", "אוזן"]);
    const bare = parseEdgeToRunner(encodeControl(start));
    expect(bare.ok && bare.message.type === "start" && bare.message.phrases).toBeUndefined();
  });

  it("refuses phrases that are not phrases, saying which", () => {
    expect(parseEdgeToRunner(encodeControl({ ...start, phrases: ["ok", "bad\u0007"] }))).toEqual({
      ok: false,
      message: 'relay start.phrases[1] "badU+0007" holds a control character (U+0007)',
    });
    const many = Array.from({ length: MAX_CALL_PHRASES + 1 }, (_, i) => `p${i}`);
    expect(parseEdgeToRunner(encodeControl({ ...start, phrases: many }))).toEqual({
      ok: false,
      message: `relay start.phrases has ${MAX_CALL_PHRASES + 1} phrases, at most ${MAX_CALL_PHRASES}`,
    });
    expect(parseEdgeToRunner(JSON.stringify({ v: 1, ...start, phrases: "a,b" }))).toEqual({
      ok: false,
      message: "relay start.phrases is not a list of phrases",
    });
  });
});
