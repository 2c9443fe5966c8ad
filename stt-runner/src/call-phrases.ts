/**
 * A call's own phrase hints, as the engines take them (Google's speech contexts and phrase sets,
 * the whisper worker's hotwords), on top of their configured ones (GOOGLE_PHRASES, WHISPER_HINTS).
 */
import { MAX_PHRASE_CHARS, PHRASES_PARAMETER, SettingError, checkPhrases, parsePhrasesParameter } from "@ozen/shared";
import type { PhrasesResult, RelayStart } from "@ozen/shared";

/**
 * The call's phrases: its relay start's `phrases` (the edge read and checked them), or, from a
 * client that speaks to the runner without them, its `ozen_phrases` parameter checked the same
 * way (`relay/phrases.ts`). Not ok: the parameter is not phrases, and the message says why (the
 * engines then use none of it; the relay server logs it).
 */
export function callOwnPhrases(start: Pick<RelayStart, "phrases" | "customParameters">): PhrasesResult {
  if (start.phrases !== undefined) return { ok: true, phrases: start.phrases };
  const raw = start.customParameters[PHRASES_PARAMETER];
  return raw === undefined ? { ok: true, phrases: [] } : parsePhrasesParameter(raw);
}

/** The call's own phrases, none when they are refused. */
export function callOwnPhraseList(start: Pick<RelayStart, "phrases" | "customParameters">): readonly string[] {
  const r = callOwnPhrases(start);
  return r.ok ? r.phrases : [];
}

/**
 * A configured phrase list (GOOGLE_PHRASES, WHISPER_HINTS) as read from its setting `name`, each
 * phrase checked by the rules of a call's own (`relay/phrases.ts`: 1 to MAX_PHRASE_CHARS
 * characters, no control character), at start: they reach every call's engine session. How many
 * is each engine's own cap (`callPhrases`, `callHints`). Throws a `SettingError` naming the
 * setting and the phrase.
 */
export function configuredPhrases(name: string, phrases: readonly string[]): readonly string[] {
  const checked = checkPhrases(phrases, name, Infinity);
  if (!checked.ok) {
    throw new SettingError({
      setting: name,
      value: phrases.join(","),
      problem: `is refused: ${checked.message}`,
      expected: `phrases of 1 to ${MAX_PHRASE_CHARS} characters with no control character`,
    });
  }
  return checked.phrases;
}
