/**
 * Text clean-up for transcripts. `polishFinal` is the short punctuation polish a final gets
 * before it goes to the agent (Google's fast profile sends no punctuation): spacing, a sentence
 * end, Hebrew-aware. `mergeFragments` joins an engine's pieces of one hypothesis. Pure.
 *
 * Hand-written: no maintained library punctuates Hebrew ASR output, and this is a few rules.
 */

/** Bidi controls: LRM, RLM, embeddings and overrides (U+202A..U+202E), isolates (U+2066..U+2069). */
const BIDI_CONTROLS = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Removes bidi controls, collapses whitespace to one space, trims. */
export function normalizeTranscriptText(text: string): string {
  return text.replace(BIDI_CONTROLS, "").replace(/\s+/g, " ").trim();
}

/**
 * Joins the pieces an engine gives for one hypothesis (Google: "to be" + " or not to be") into
 * one normalised text. Empty pieces are skipped; pieces are separate results, so each junction
 * is a word boundary: one space between them whether or not the engine sent it.
 */
export function mergeFragments(fragments: readonly string[]): string {
  let out = "";
  for (const f of fragments) {
    const t = normalizeTranscriptText(f);
    if (t) out = out ? `${out} ${t}` : t;
  }
  return out;
}

export interface PolishOptions {
  /** BCP-47 language of the call (`he-IL`, `iw-IL`, `en-US`); default `he`. */
  readonly language?: string;
}

const HEBREW_QUESTION_WORDS = new Set([
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
]);
/** ש + question word spellings that are usually other words: "my name", "there", Solomon, "aspiration", "I put". */
const HEBREW_SHIN_NOT_QUESTION = new Set(["שמי", "שמה", "שלמה", "שאיפה", "שמתי"]);

/** Greetings and courtesies a Hebrew caller opens with, as words; two-word ones first. */
const HEBREW_GREETINGS: readonly (readonly string[])[] = [
  ["בוקר", "טוב"],
  ["בוקר", "אור"],
  ["צהריים", "טובים"],
  ["ערב", "טוב"],
  ["לילה", "טוב"],
  ["שלום"],
  ["היי"],
  ["הי"],
  ["הלו"],
  ["אהלן"],
  ["סליחה"],
  ["תודה"],
];
/**
 * Words that open a clause after a greeting ("שלום, אני ...", "היי, מה נשמע"): personal and
 * demonstrative pronouns, question words, and a call's usual first verbs ("I wanted", "I called",
 * "is it possible", "my name is", "speaking", "there is/isn't").
 */
const HEBREW_CLAUSE_OPENERS = new Set([
  ...HEBREW_QUESTION_WORDS,
  "אני",
  "אנחנו",
  "אנו",
  "אתה",
  "את",
  "אתם",
  "אתן",
  "הוא",
  "היא",
  "הם",
  "הן",
  "זה",
  "זאת",
  "זו",
  "רציתי",
  "רצינו",
  "התקשרתי",
  "אפשר",
  "שמי",
  "קוראים",
  "מדבר",
  "מדברת",
  "יש",
  "אין",
]);
/** Words that make what follows the greeting its complement ("תודה על הכל", "סליחה כי ..."): no comma. */
const HEBREW_GREETING_COMPLEMENTS = new Set(["על", "כי", "אם", "בשביל", "עבור"]);
/** How many words (the greeting's own tail, "לך", "רבה"; a vocative, a name) may stand between a greeting and its clause. */
const MAX_WORDS_BEFORE_CLAUSE = 2;
const HEBREW_WORD = /^[\u05d0-\u05ea]+$/;
const SENTENCE_FINAL_WORD = /[.?!…][)\]}"'”’»״׳]*$/u;

const ENGLISH_WH = new Set(["what", "who", "where", "when", "why", "how", "which", "whose", "whom"]);
const ENGLISH_AUX = new Set([
  "is",
  "are",
  "am",
  "was",
  "were",
  "do",
  "does",
  "did",
  "can",
  "could",
  "will",
  "would",
  "should",
  "shall",
  "may",
  "might",
  "have",
  "has",
  "had",
]);
const ENGLISH_SUBJECT = new Set([
  "i",
  "you",
  "we",
  "they",
  "he",
  "she",
  "it",
  "there",
  "this",
  "that",
  "these",
  "those",
  "the",
  "anyone",
  "anybody",
  "someone",
  "somebody",
  "everyone",
  "everything",
  "anything",
  "something",
]);
/** Imperative-capable auxiliaries ("do it", "have the ...") count only before a person. */
const ENGLISH_PERSON = new Set(["i", "you", "we", "they", "he", "she"]);

/** Sentence-final marks; text ending in one of them keeps its end. */
const SENTENCE_END = /[.?!…]/;
/** Closing quotes and brackets that may follow a sentence end (`"שלום."`). */
const TRAILING_CLOSERS = /[)\]}"'”’»״׳]+$/u;
const OPENERS = /^[(["'“‘«״׳]+/u;

function isHebrew(language: string): boolean {
  const l = language.toLowerCase();
  return l === "he" || l === "iw" || l.startsWith("he-") || l.startsWith("iw-");
}

function isEnglish(language: string): boolean {
  const l = language.toLowerCase();
  return l === "en" || l.startsWith("en-");
}

/** The last sentence of `t` (all of it when it has one). */
function lastSentence(t: string): string {
  const boundary = Math.max(...[". ", "? ", "! ", "… "].map((m) => t.lastIndexOf(m)));
  return boundary < 0 ? t : t.slice(boundary + 2);
}

/** The first two words of the last sentence of `t`, lower-cased, without surrounding punctuation. */
function lastSentenceWords(t: string): string[] {
  return lastSentence(t)
    .split(" ")
    .slice(0, 2)
    .map((w) =>
      w
        .replace(OPENERS, "")
        .replace(/[,;:.?!…)\]}"'”’»״׳]+$/u, "")
        .toLowerCase(),
    );
}

function isHebrewQuestionWord(word: string): boolean {
  if (HEBREW_QUESTION_WORDS.has(word)) return true;
  const rest = word.slice(1);
  if (word.startsWith("ו")) return HEBREW_QUESTION_WORDS.has(rest);
  if (word.startsWith("ש")) return !HEBREW_SHIN_NOT_QUESTION.has(word) && HEBREW_QUESTION_WORDS.has(rest);
  return false;
}

function isEnglishQuestion(first: string, second: string | undefined): boolean {
  if (ENGLISH_WH.has(first)) return true;
  if (!ENGLISH_AUX.has(first) || second === undefined) return false;
  return first === "do" || first === "have" ? ENGLISH_PERSON.has(second) : ENGLISH_SUBJECT.has(second);
}

/** Whether the last sentence of `t` opens like a question; Hebrew and English calls only. */
function looksLikeQuestion(t: string, language: string): boolean {
  if (!isHebrew(language) && !isEnglish(language)) return false;
  // Hebrew and Latin letters never overlap, so both lists apply: a Hebrew call's English sentence reads as English
  const [first = "", second] = lastSentenceWords(t);
  if (isHebrewQuestionWord(first) || isEnglishQuestion(first, second)) return true;
  // a greeting before the question ("היי, מה נשמע"): the clause after its comma decides
  const clause = clauseAfterGreeting(lastSentence(t).split(" "));
  return clause !== undefined && isHebrewQuestionWord(clause);
}

/** How many words of `words` a greeting at their start takes ("בוקר טוב" = 2), or 0. */
function greetingLength(words: readonly string[]): number {
  const g = HEBREW_GREETINGS.find((greeting) => greeting.every((w, i) => words[i] === w));
  return g ? g.length : 0;
}

/**
 * The first word of the clause after a greeting chunk that ends in a comma ("שלום דני, מה ..." ->
 * "מה"), given the raw words of a sentence; undefined when the sentence does not open so.
 */
function clauseAfterGreeting(rawWords: readonly string[]): string | undefined {
  const bare = rawWords.map((w) => w.replace(/,$/, ""));
  const n = greetingLength(bare);
  if (n === 0) return undefined;
  const commaAt = rawWords.findIndex((w) => w.endsWith(","));
  return commaAt >= n - 1 && commaAt < n + MAX_WORDS_BEFORE_CLAUSE ? bare[commaAt + 1] : undefined;
}

/**
 * The playbook's fragment merge: a greeting or courtesy that opens a sentence, with at most two
 * more words (its own tail, "שלום לך", or a vocative, "היי דני"), is separated by a comma from the
 * clause that follows when that clause opens with a pronoun, a question word or a call's usual
 * first verb: "שלום אני דני" -> "שלום, אני דני", "היי דני מה נשמע" -> "היי דני, מה נשמע".
 * Nothing changes when no such clause follows ("שלום לך", "תודה רבה"), when the greeting takes a
 * complement ("תודה על הכל", "תודה שחיכית"), or when the words already carry punctuation.
 * `words` are single-space-separated tokens; returns them with the comma added.
 */
function commaAfterHebrewGreetings(words: readonly string[]): string[] {
  const out = [...words];
  for (let i = 0; i < out.length; i++) {
    if (i > 0 && !SENTENCE_FINAL_WORD.test(out[i - 1]!)) continue;
    const n = greetingLength(out.slice(i, i + 2));
    if (n === 0) continue;
    for (let k = i + n; k < out.length && k <= i + n + MAX_WORDS_BEFORE_CLAUSE; k++) {
      const word = out[k]!;
      const bare = word.replace(/[,.?!:;…]+$/u, "");
      if (HEBREW_CLAUSE_OPENERS.has(bare)) {
        out[k - 1] += ",";
        break;
      }
      // a word with punctuation, a non-Hebrew word, a complement: the greeting does not stand alone here
      if (!HEBREW_WORD.test(word) || HEBREW_GREETING_COMPLEMENTS.has(word) || word.startsWith("ש")) break;
    }
  }
  return out;
}

/**
 * Polishes a final for the agent:
 * - removes bidi controls, collapses whitespace, trims;
 * - no space before `, . ? ! : ;` and one space after them when a word follows, except inside
 *   numbers (`3.5`, `1,000`, `10:30`) and after a `.` not followed by a capital or a Hebrew letter
 *   (`google.com`); a mark written with a space before it and none after (`42 ,100`) sat between
 *   two words and gets its space after (`42, 100`), so polish never joins words;
 * - Hebrew: a greeting that opens a sentence gets a comma before the clause that follows it, as
 *   the playbook merges fragments ("שלום אני דני" -> "שלום, אני דני"; "שלום לך" and "תודה רבה"
 *   stay as they are; see `commaAfterHebrewGreetings`);
 * - when the text does not end in `. ? ! …` (closing quotes and brackets aside): a trailing
 *   `, ; :` is dropped and `?` is added when the last sentence opens with a question word
 *   (Hebrew: מה, מי, איפה, ... also after ו or ש, or after a greeting and its comma: "היי, מה
 *   נשמע"; English: what/who/... or an auxiliary before a subject: "is it", "can you"), else `.`;
 *   for other languages always `.`;
 * - capitalises a first Latin letter (not a camel-cased word: "iPhone"); Hebrew has no case;
 * - geresh and gershayim (׳ ״, and ' " used for them: צ'יפס, צה"ל) are left as they are.
 * Text with no letter or digit polishes to "". `options` may be the language string itself.
 */
export function polishFinal(text: string, options: PolishOptions | string = {}): string {
  const language = (typeof options === "string" ? options : options.language) ?? "he";
  let t = normalizeTranscriptText(text);
  if (!/[\p{L}\p{N}]/u.test(t)) return "";
  // a mark with a space before it separates the words around it: "42 ,100" is 42 and 100, not 42,100
  t = t.replace(/ +([,.?!:;])(?=[\p{L}\p{N}])/gu, "$1 ");
  t = t.replace(/ +(?=[,.?!:;])/g, "");
  t = t.replace(/[,.?!:;](?=[\p{L}\p{N}])/gu, (mark: string, i: number) => {
    const before = t[i - 1] ?? "";
    const after = String.fromCodePoint(t.codePointAt(i + 1)!);
    if (/\d/.test(before) && /\d/.test(after)) return mark;
    if (mark === "." && !/[\p{Lu}\u05d0-\u05ea]/u.test(after)) return mark;
    return `${mark} `;
  });
  if (isHebrew(language)) t = commaAfterHebrewGreetings(t.split(" ")).join(" ");
  if (!SENTENCE_END.test(t.replace(TRAILING_CLOSERS, "").slice(-1))) {
    t = t.replace(/[,;:]$/, "");
    t += looksLikeQuestion(t, language) ? "?" : ".";
  }
  return t.replace(/^([(["'“‘«]*)(\p{Script=Latin})(\S*)/u, (whole: string, open: string, c: string, rest: string) =>
    /\p{Lu}/u.test(rest) ? whole : open + c.toUpperCase() + rest,
  );
}
