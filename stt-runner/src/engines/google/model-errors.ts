/**
 * Which Google errors mean "this model cannot serve this call here", so the session moves down
 * its model chain (GOOGLE_MODELS) instead of failing the call. Pure.
 *
 * The texts Google sends, all as INVALID_ARGUMENT (gRPC 3, HTTP 400):
 * - v1, a model without the language:
 *   `Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.`
 * - v2, a model not served in the recognizer's location (chirp_3 outside us/eu, chirp_2 in global):
 *   `The model "chirp_3" does not exist in the location named "global"`
 * - v2, a model served there but not for the language:
 *   `The language "iw-IL" is not supported by the model "chirp_3" in the location named "us"`
 * NOT_FOUND (gRPC 5) counts too when its text is about the model: a missing model is the same
 * fault whatever status a location answers it with. Anything else (a feature the model lacks,
 * `Recognizer does not support feature: word_level_confidence`; a bad recognizer; permissions)
 * is not the model's availability and moving down the chain would only hide it.
 */

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

const NAMES_THE_MODEL = /\bmodel\b/i;
const UNAVAILABLE = /not supported|does not exist|not (?:available|found)|unsupported/i;
// "Recognizer does not support feature: ..." and "Config contains unsupported fields" are about
// features, not the model's availability
const ABOUT_A_FEATURE = /\bfeature|\bfields?\b/i;

/** Whether a StreamingRecognize error says the configured model is unavailable for the language or location. */
export function isModelUnavailable(code: number, message: string): boolean {
  if (code !== INVALID_ARGUMENT && code !== NOT_FOUND) return false;
  return NAMES_THE_MODEL.test(message) && UNAVAILABLE.test(message) && !ABOUT_A_FEATURE.test(message);
}
