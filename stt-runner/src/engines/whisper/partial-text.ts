/**
 * The whisper engine's live profile: partials without punctuation (the GO check's
 * `punctuation_off`, playbook B: a partial's text should not flicker between "yes" and "yes."
 * as the decoder changes its mind about where a sentence ends), finals as Whisper writes them.
 * Pure.
 */
import type { EngineProfile } from "@ozen/shared";

export const WHISPER_PROFILE: EngineProfile = { name: "fast", punctuation: false };

// Sentence punctuation and brackets at either end of a word. Apostrophes, geresh and gershayim
// (don't, צה"ל, ג׳) and hyphens stay: they are inside words or part of them.
const EDGE_PUNCTUATION = /^[.,?!;:…"“”„«»()[\]{}\u05C3\u060C\u061F]+|[.,?!;:…"“”„«»()[\]{}\u05C3\u060C\u061F]+$/gu;

/** The words of `text` with sentence punctuation at their edges removed, single-spaced. */
export function withoutPunctuation(text: string): string {
  return text
    .split(/\s+/u)
    .map((w) => w.replace(EDGE_PUNCTUATION, ""))
    .filter((w) => w.length > 0)
    .join(" ");
}
