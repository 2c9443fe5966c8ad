/**
 * A call's own phrase hints, as the engines take them (Google's speech contexts and phrase sets,
 * the whisper worker's hotwords), on top of their configured ones (GOOGLE_PHRASES, WHISPER_HINTS).
 */
import { PHRASES_PARAMETER, parsePhrasesParameter } from "@ozen/shared";
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
