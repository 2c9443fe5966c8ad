/**
 * Twilio's call identifiers: a CallSid is `CA` followed by 32 hex digits. The edge checks every
 * CallSid that comes from outside (a route, the voice webhook) against this before it names a
 * Durable Object or a record with it. Pure.
 */

/** `CA` + 32 hex digits, as Twilio documents a Call resource's `sid`. */
export const CALL_SID_PATTERN = /^CA[0-9a-fA-F]{32}$/;

/** True when `text` is a CallSid in Twilio's format. */
export function isCallSid(text: string): boolean {
  return CALL_SID_PATTERN.test(text);
}

/**
 * Why `text` is not a CallSid, as a message a person can act on; undefined when it is one.
 * Long input is cut so the message stays short (it may be logged).
 */
export function callSidProblem(text: string): string | undefined {
  if (isCallSid(text)) return undefined;
  const shown = text.length > 48 ? `${JSON.stringify(text.slice(0, 48))}...` : JSON.stringify(text);
  return `CallSid ${shown} is not a Twilio CallSid (CA followed by 32 hex digits)`;
}
