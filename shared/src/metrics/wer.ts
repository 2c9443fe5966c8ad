/**
 * Word error rate with the normalisation ozen's benchmarks compare transcripts under. Pure.
 *
 * Hebrew follows ivrit-ai's evaluation (the Hebrew leaderboard's `HebrewTextNormalizer`) with the
 * fix `../shared/data/README.md` asks for: bidi and zero-width marks and niqqud go first; geresh
 * and gershayim (and ASCII quotes) are deleted, so צה״ל and צה"ל are one word `צהל`; maqaf joins
 * like a hyphen and becomes a space; then every mark, symbol and punctuation character becomes a
 * space and whitespace folds. English adds what Whisper output and telephony prompts disagree on
 * most: contractions are written out (`I'm` = `I am`, `don't` = `do not`; a possessive `'s` stays
 * one word), a hyphen inside a word joins it (`re-record` = `rerecord`), the keypad's symbols are
 * read (`*` = `star`, `#` = `pound`), number words become digits (`press one` = `press 1`) and a
 * few titles are spelled out.
 */

/** The normalisation rules to apply: the language of the text. */
export type WerLanguage = "he" | "en";

// U+061C Arabic letter mark, U+200B..U+200F zero-width and LRM/RLM, U+202A..U+202E embeddings,
// U+2066..U+2069 isolates, U+FEFF BOM.
const INVISIBLE = /[\u061C\u200B-\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/g;
// Hebrew points and cantillation (all Mn in U+0591..U+05C7), not the punctuation in that block:
// U+05BE maqaf, U+05C0 paseq, U+05C3 sof pasuq, U+05C6 nun hafukha.
const NIQQUD = /[\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7]/g;
// Geresh, gershayim and the ASCII and typographic quotes written for them: deleted, not spaced.
const QUOTES = /[\u05F3\u05F4'"\u2018\u2019\u201C\u201D`]/g;
const MAQAF = /\u05BE/g;
// Annotations a reference may carry: [noise], <unk>.
const ANNOTATIONS = /\[[^\]]*\]|<[^>]*>/g;
const MARKS_SYMBOLS_PUNCTUATION = /[\p{M}\p{S}\p{P}]/gu;
const WHITESPACE = /\s+/gu;
// 1,000 -> 1000 before the comma becomes a space.
const DIGIT_GROUPS = /(\d),(?=\d{3}\b)/g;

const UNITS: Readonly<Record<string, number>> = {
  zero: 0,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  thirteen: 13,
  fourteen: 14,
  fifteen: 15,
  sixteen: 16,
  seventeen: 17,
  eighteen: 18,
  nineteen: 19,
};
const TENS: Readonly<Record<string, number>> = {
  twenty: 20,
  thirty: 30,
  forty: 40,
  fifty: 50,
  sixty: 60,
  seventy: 70,
  eighty: 80,
  ninety: 90,
};
const SCALES: Readonly<Record<string, number>> = { hundred: 100, thousand: 1000, million: 1_000_000 };
const TITLES: Readonly<Record<string, string>> = { mr: "mister", mrs: "missus", dr: "doctor" };

// English contractions written out. `'s` is left alone (a possessive: `Waldo's`) except after
// the pronouns and question words where it is `is`; `'d` (had or would) is left alone.
const APOSTROPHES = /[\u2019\u02BC]/g;
const CONTRACTIONS: readonly (readonly [RegExp, string])[] = [
  [/\bwon't\b/g, "will not"],
  [/\bcan't\b/g, "can not"],
  [/\bshan't\b/g, "shall not"],
  [/\blet's\b/g, "let us"],
  [/\b(it|that|there|here|what|where|who|how|he|she)'s\b/g, "$1 is"],
  [/n't\b/g, " not"],
  [/'m\b/g, " am"],
  [/'re\b/g, " are"],
  [/'ve\b/g, " have"],
  [/'ll\b/g, " will"],
];
// A hyphen between letters joins a compound; the keypad's symbols as a caller says them.
const WORD_HYPHEN = /(\p{L})-(?=\p{L})/gu;
const KEYPAD: readonly (readonly [RegExp, string])[] = [
  [/\*/g, " star "],
  [/#/g, " pound "],
];

/** English spellings that say the same words made the same: contractions, compounds, keypad symbols. */
function englishSpellings(lowerCased: string): string {
  let t = lowerCased.replace(APOSTROPHES, "'");
  for (const [re, out] of CONTRACTIONS) t = t.replace(re, out);
  t = t.replace(WORD_HYPHEN, "$1");
  for (const [re, out] of KEYPAD) t = t.replace(re, out);
  return t;
}

/**
 * The text as WER compares it: a single-spaced string of lower-case words, no punctuation.
 * Idempotent. `he` also applies to mixed text (English words in a Hebrew call are lower-cased
 * the same way); `en` adds contractions, compounds and keypad symbols, number words to digits and
 * spelled-out titles.
 */
export function normalizeForWer(text: string, language: WerLanguage): string {
  let t = text.normalize("NFKC").replace(INVISIBLE, "").replace(NIQQUD, "").replace(ANNOTATIONS, " ");
  if (language === "en") t = englishSpellings(t.toLowerCase());
  t = t.replace(QUOTES, "").replace(MAQAF, " ").toLowerCase().replace(DIGIT_GROUPS, "$1");
  t = t.replace(MARKS_SYMBOLS_PUNCTUATION, " ").replace(WHITESPACE, " ").trim();
  if (language === "en" && t) t = englishWords(t.split(" ")).join(" ");
  return t;
}

/** The words of the normalised text (empty for a text with none). */
export function werWords(text: string, language: WerLanguage): string[] {
  const t = normalizeForWer(text, language);
  return t ? t.split(" ") : [];
}

/** Number words to digits (`twenty one` -> `21`, `one hundred and five` -> `105`), titles spelled out. */
function englishWords(words: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length;) {
    const n = readNumber(words, i);
    if (n) {
      out.push(String(n.value));
      i = n.next;
      continue;
    }
    const w = words[i]!;
    out.push(TITLES[w] ?? w);
    i++;
  }
  return out;
}

/** A cardinal spelled out from `start`, or undefined when none starts there. */
function readNumber(words: readonly string[], start: number): { value: number; next: number } | undefined {
  let total = 0;
  let group = 0;
  let i = start;
  let last: "unit" | "teen" | "tens" | "scale" | undefined;
  while (i < words.length) {
    const w = words[i]!;
    if (w in UNITS) {
      const v = UNITS[w]!;
      // "one two" is two numbers (a digit string read out), "twenty one" is one
      if (last === "unit" || last === "teen" || (last === "tens" && v >= 10)) break;
      group += v;
      last = v >= 10 ? "teen" : "unit";
    } else if (w in TENS) {
      if (last === "unit" || last === "teen" || last === "tens") break;
      group += TENS[w]!;
      last = "tens";
    } else if (w in SCALES && last !== undefined && last !== "scale") {
      const scale = SCALES[w]!;
      if (scale === 100) group *= 100;
      else {
        total += group * scale;
        group = 0;
      }
      last = "scale";
    } else if (w === "and" && last === "scale" && i + 1 < words.length && isNumberWord(words[i + 1]!)) {
      // "one hundred and five": the "and" belongs to the number
    } else break;
    i++;
  }
  if (last === undefined) return undefined;
  return { value: total + group, next: i };
}

function isNumberWord(w: string): boolean {
  return w in UNITS || w in TENS;
}

/** Edit counts of a hypothesis against a reference, in words. */
export interface WordErrors {
  readonly substitutions: number;
  readonly deletions: number;
  readonly insertions: number;
  /** Words in the reference (the WER denominator). */
  readonly referenceWords: number;
}

/**
 * The minimum-edit alignment of two word lists (Levenshtein, unit costs), as counts. Among
 * alignments of equal cost the one with the most substitutions is taken, as jiwer does.
 * O(|ref| * |hyp|) time, O(|hyp|) memory.
 */
export function wordErrors(reference: readonly string[], hypothesis: readonly string[]): WordErrors {
  const m = hypothesis.length;
  // cost, substitutions, deletions, insertions of the best alignment of ref[:i] with hyp[:j]
  let cost = new Uint32Array(m + 1);
  let sub = new Uint32Array(m + 1);
  let del = new Uint32Array(m + 1);
  let ins = new Uint32Array(m + 1);
  let nCost = new Uint32Array(m + 1);
  let nSub = new Uint32Array(m + 1);
  let nDel = new Uint32Array(m + 1);
  let nIns = new Uint32Array(m + 1);
  for (let j = 0; j <= m; j++) {
    cost[j] = j;
    ins[j] = j;
  }
  for (let i = 1; i <= reference.length; i++) {
    nCost[0] = i;
    nSub[0] = 0;
    nDel[0] = i;
    nIns[0] = 0;
    const r = reference[i - 1];
    for (let j = 1; j <= m; j++) {
      const same = r === hypothesis[j - 1];
      const diag = cost[j - 1]! + (same ? 0 : 1);
      const up = cost[j]! + 1; // deletion of ref[i-1]
      const left = nCost[j - 1]! + 1; // insertion of hyp[j-1]
      if (diag <= up && diag <= left) {
        nCost[j] = diag;
        nSub[j] = sub[j - 1]! + (same ? 0 : 1);
        nDel[j] = del[j - 1]!;
        nIns[j] = ins[j - 1]!;
      } else if (up <= left) {
        nCost[j] = up;
        nSub[j] = sub[j]!;
        nDel[j] = del[j]! + 1;
        nIns[j] = ins[j]!;
      } else {
        nCost[j] = left;
        nSub[j] = nSub[j - 1]!;
        nDel[j] = nDel[j - 1]!;
        nIns[j] = nIns[j - 1]! + 1;
      }
    }
    [cost, nCost] = [nCost, cost];
    [sub, nSub] = [nSub, sub];
    [del, nDel] = [nDel, del];
    [ins, nIns] = [nIns, ins];
  }
  return { substitutions: sub[m]!, deletions: del[m]!, insertions: ins[m]!, referenceWords: reference.length };
}

/** Edit counts of one transcript against its reference, both normalised for `language`. */
export function transcriptErrors(reference: string, hypothesis: string, language: WerLanguage): WordErrors {
  return wordErrors(werWords(reference, language), werWords(hypothesis, language));
}

/**
 * Pooled (corpus) WER: all edits over all reference words, as a fraction (0.1 = 10 %). 0 for
 * no reference words and no edits; Infinity for edits against an empty reference.
 */
export function pooledWer(errors: readonly WordErrors[]): number {
  let edits = 0;
  let words = 0;
  for (const e of errors) {
    edits += e.substitutions + e.deletions + e.insertions;
    words += e.referenceWords;
  }
  if (words === 0) return edits === 0 ? 0 : Infinity;
  return edits / words;
}
