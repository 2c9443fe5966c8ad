/**
 * Phrase hints from the edge's configuration, per Twilio account and per called number, and a
 * call's hints as its relay `start` carries them (`relay/phrases.ts` has the limits). A number's
 * hints travel in the voice webhook's TwiML as `ozen_phrases` (Twilio's `start` does not say the
 * number called); an account's are added when the stream starts (its `start` names the account).
 */
import {
  MAX_PHRASES_PARAMETER_CHARS,
  PHRASES_PARAMETER,
  SettingError,
  checkPhrases,
  mergePhrases,
  parsePhrasesParameter,
  phrasesParameterValue,
  readSettings,
  setting,
} from "@ozen/shared";
import type { SettingsEnv } from "@ozen/shared";

export interface PhraseHintsConfig {
  /** Hints for every call of a Twilio AccountSid. */
  readonly byAccount: ReadonlyMap<string, readonly string[]>;
  /** Hints for calls to a Twilio number (E.164, the webhook's `To`). */
  readonly byNumber: ReadonlyMap<string, readonly string[]>;
}

export const PHRASE_SETTINGS = {
  PHRASES_ACCOUNTS: setting.string({
    description:
      'Phrase hints per Twilio AccountSid, for every call of the account: JSON `{"AC...": ["Aoife Nakagawa", "אוזן"]}` ' +
      "(at most 50 phrases of at most 100 characters, none with `,`, `|` or a control character).",
  }),
  PHRASES_NUMBERS: setting.string({
    description:
      'Phrase hints per called Twilio number (the webhook\'s `To`, E.164): JSON `{"+97231234567": ["..."]}`, ' +
      `sent in the TwiML's \`ozen_phrases\`, so one number's phrases, joined by commas, fit ${MAX_PHRASES_PARAMETER_CHARS} characters.`,
  }),
} as const;

const ACCOUNT_SID = /^AC[0-9a-fA-F]{32}$/;
const E164 = /^\+[1-9][0-9]{1,14}$/;

function perKey(
  name: "PHRASES_ACCOUNTS" | "PHRASES_NUMBERS",
  raw: string | undefined,
  key: { readonly pattern: RegExp; readonly says: string; readonly example: string },
): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  if (raw === undefined) return out;
  const shape = `JSON {"${key.example}": ["phrase", ...], ...}`;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new SettingError({ setting: name, value: raw, problem: "is not JSON", expected: shape });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new SettingError({ setting: name, value: raw, expected: shape });
  }
  for (const [k, list] of Object.entries(v)) {
    if (!key.pattern.test(k)) {
      throw new SettingError({ setting: name, value: k, problem: `names ${JSON.stringify(k)}`, expected: key.says });
    }
    const checked = checkPhrases(list, `${name}.${k}`);
    if (!checked.ok) {
      throw new SettingError({
        setting: `${name}.${k}`,
        value: list,
        problem: `is refused: ${checked.message}`,
        expected: "a list of phrases",
      });
    }
    out.set(k, checked.phrases);
  }
  return out;
}

/** Reads and checks PHRASES_ACCOUNTS and PHRASES_NUMBERS; throws `SettingError`. */
export function loadPhraseHints(env: SettingsEnv): PhraseHintsConfig {
  const s = readSettings(PHRASE_SETTINGS, env);
  const byNumber = perKey("PHRASES_NUMBERS", s.PHRASES_NUMBERS, {
    pattern: E164,
    says: "a number in E.164 (+ and up to 15 digits)",
    example: "+972...",
  });
  for (const [number, phrases] of byNumber) {
    const chars = phrasesParameterValue(phrases).length;
    if (chars > MAX_PHRASES_PARAMETER_CHARS) {
      throw new SettingError({
        setting: `PHRASES_NUMBERS.${number}`,
        value: phrases,
        problem: `joins to ${chars} characters`,
        expected: `at most ${MAX_PHRASES_PARAMETER_CHARS} (they travel in a TwiML <Parameter>; put the rest in PHRASES_ACCOUNTS)`,
      });
    }
  }
  return {
    byAccount: perKey("PHRASES_ACCOUNTS", s.PHRASES_ACCOUNTS, {
      pattern: ACCOUNT_SID,
      says: "an AccountSid (AC followed by 32 hex digits)",
      example: "AC...",
    }),
    byNumber,
  };
}

/** The `<Parameter>`s the voice webhook adds for a call to `to` (none when the number has no hints). */
export function numberPhraseParameters(config: PhraseHintsConfig, to: string | null): Record<string, string> {
  const phrases = to === null ? undefined : config.byNumber.get(to);
  return phrases?.length ? { [PHRASES_PARAMETER]: phrasesParameterValue(phrases) } : {};
}

/** A call's hints for its relay start, and why its own `ozen_phrases` was refused, if it was. */
export interface CallPhrases {
  readonly phrases: readonly string[];
  readonly refused?: string;
}

/**
 * The hints of a call of `accountSid` whose stream's `ozen_phrases` is `parameter`: the
 * account's, then the parameter's (the number's from the webhook, or the application's own
 * TwiML), each once, at most MAX_CALL_PHRASES. A parameter that is not phrases adds nothing and
 * says why.
 */
export function callPhrasesOf(
  config: PhraseHintsConfig,
  accountSid: string,
  parameter: string | undefined,
): CallPhrases {
  const account = config.byAccount.get(accountSid) ?? [];
  if (parameter === undefined) return { phrases: mergePhrases([account]) };
  const own = parsePhrasesParameter(parameter);
  if (!own.ok) return { phrases: mergePhrases([account]), refused: own.message };
  return { phrases: mergePhrases([account, own.phrases]) };
}
