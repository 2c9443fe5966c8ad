/**
 * The one comparison of secrets (API tokens, call tokens, Twilio and webhook signatures): in time
 * that depends on the expected secret's length alone, never on where a guess first differs, so a
 * caller cannot find a token one character at a time by timing the answers. Pure, and the same in
 * the Worker and in Node (WebCrypto has no constant-time compare of its own in both).
 */

/**
 * True when `given` is exactly `expected`, compared in constant time for a given `expected`.
 * An empty `expected` never matches: a secret that is not configured opens nothing.
 */
export function equalSecrets(given: string, expected: string): boolean {
  if (expected.length === 0) return false;
  // the lengths differing is folded in, not returned early; charCodeAt past the end is NaN, | 0 makes it 0
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) diff |= (given.charCodeAt(i) | 0) ^ expected.charCodeAt(i);
  return diff === 0;
}
