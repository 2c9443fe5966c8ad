/**
 * The language a call is transcribed in, as its `call.started` says it: the engine's own, from
 * its configuration (WHISPER_LANGUAGE, GOOGLE_LANGUAGE), or the call's `ozen_language` where the
 * engine takes that (whisper does; Google is set up for one language per runner).
 */
import type { RelayStart } from "@ozen/shared";
import type { GoogleConfig } from "./engines/google/config.js";
import { callLanguage } from "./engines/whisper/config.js";
import type { WhisperConfig } from "./engines/whisper/config.js";

/** A call's language (a BCP-47 tag) from its start. */
export type LanguageOf = (start: RelayStart) => string;

/** Google transcribes every call in GOOGLE_LANGUAGE (`he-IL` on v1, `iw-IL` on v2 by default). */
export function googleLanguage(config: Pick<GoogleConfig, "languageCode">): LanguageOf {
  return () => config.languageCode;
}

/** Whisper takes the call's `ozen_language` (its primary subtag), else WHISPER_LANGUAGE. */
export function whisperLanguage(config: WhisperConfig): LanguageOf {
  return (start) => callLanguage(config, start.customParameters);
}

/** An engine with no language of its own (the null engine): the call's `ozen_language`, else `und` (undetermined). */
export const callOwnLanguage: LanguageOf = (start) => start.customParameters["ozen_language"] || "und";
