/**
 * A call's phrase hints: names and words the recognizer should expect (Google's speech contexts
 * and v2 inline phrase sets, the whisper worker's `hotwords`). They come from the edge's
 * configuration (per Twilio account, per Twilio number) and from the call's own
 * `<Parameter name="ozen_phrases">`, which an application may fill from what its callers typed:
 * a stranger's input. One set of limits and one parser, here, serve the edge (settings and the
 * stream's parameter), the relay wire (`start.phrases`) and the runner.
 *
 * A phrase is 1 to MAX_PHRASE_CHARS characters (Google's limit for one phrase), trimmed, with no
 * control character (C0, C1, a line or paragraph separator, a lone surrogate) and no `,` or `|`
 * (they separate phrases in `ozen_phrases`); a call has at most MAX_CALL_PHRASES of them.
 */

/** The stream `<Parameter>` a call's own hints come in: phrases separated by `,` or `|`. */
export const PHRASES_PARAMETER = "ozen_phrases";

/** Phrases a call may carry at most (the edge's configured ones and its own, together). */
export const MAX_CALL_PHRASES = 50;

/** Characters one phrase may have at most (Google's limit for a phrase). */
export const MAX_PHRASE_CHARS = 100;

/** Twilio refuses a `<Parameter>` whose name and value together reach 500 characters. */
export const MAX_PHRASES_PARAMETER_CHARS = 499 - PHRASES_PARAMETER.length;

export type PhrasesResult =
  { readonly ok: true; readonly phrases: readonly string[] } | { readonly ok: false; readonly message: string };

// C0 and C1 controls (tab and newline among them), line and paragraph separators, lone surrogates
const CONTROL = /[\p{Cc}\p{Cs}\u2028\u2029]/u;
const SEPARATOR = /[,|]/;

function codePoint(c: string): string {
  return "U+" + c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
}

/** What is wrong with one phrase (already trimmed, as a list holds it), or undefined when it is fine. */
export function phraseProblem(phrase: string): string | undefined {
  if (phrase.length === 0) return "is empty";
  if (phrase.length > MAX_PHRASE_CHARS) return `is ${phrase.length} characters, at most ${MAX_PHRASE_CHARS}`;
  if (phrase !== phrase.trim()) return "has spaces around it";
  const control = CONTROL.exec(phrase);
  if (control) return `holds a control character (${codePoint(control[0])})`;
  if (SEPARATOR.test(phrase)) return "holds , or |, which separate phrases";
  return undefined;
}

/** A short, safe rendering of a phrase for a message: at most 24 characters, controls shown as code points. */
function shown(phrase: string): string {
  const cut = phrase.length > 24 ? phrase.slice(0, 24) + "..." : phrase;
  return JSON.stringify(cut.replace(new RegExp(CONTROL.source, "gu"), codePoint));
}

/**
 * Checks a list of phrases (a setting's JSON, the relay `start.phrases`): an array of at most
 * `maxPhrases` (default MAX_CALL_PHRASES) strings, each a phrase by `phraseProblem`. `what` names
 * the list in the message.
 */
export function checkPhrases(value: unknown, what: string, maxPhrases = MAX_CALL_PHRASES): PhrasesResult {
  if (!Array.isArray(value)) return { ok: false, message: `${what} is not a list of phrases` };
  if (value.length > maxPhrases) {
    return { ok: false, message: `${what} has ${value.length} phrases, at most ${maxPhrases}` };
  }
  for (const [i, p] of value.entries()) {
    if (typeof p !== "string") return { ok: false, message: `${what}[${i}] is not text` };
    const problem = phraseProblem(p);
    if (problem !== undefined) return { ok: false, message: `${what}[${i}] ${shown(p)} ${problem}` };
  }
  return { ok: true, phrases: value as string[] };
}

/**
 * The phrases of an `ozen_phrases` parameter: split on `,` and `|`, trimmed, empty ones dropped.
 * Refused whole (with the reason) when it is longer than a `<Parameter>` can be, has more than
 * MAX_CALL_PHRASES phrases, or any phrase is not one.
 */
export function parsePhrasesParameter(raw: string): PhrasesResult {
  if (raw.length > MAX_PHRASES_PARAMETER_CHARS) {
    return {
      ok: false,
      message: `${PHRASES_PARAMETER} is ${raw.length} characters, at most ${MAX_PHRASES_PARAMETER_CHARS} (Twilio's <Parameter> limit)`,
    };
  }
  const phrases = raw
    .split(SEPARATOR)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return checkPhrases(phrases, PHRASES_PARAMETER);
}

/** The `ozen_phrases` value that carries `phrases` (each a phrase by `phraseProblem`). */
export function phrasesParameterValue(phrases: readonly string[]): string {
  return phrases.join(",");
}

/** The phrases of `lists`, in order, each once, at most `max`. */
export function mergePhrases(lists: readonly (readonly string[])[], max = MAX_CALL_PHRASES): string[] {
  return [...new Set(lists.flat())].slice(0, max);
}
