/**
 * Settings of the agent's voice (`docs/agent-control.md`): barge-in, pacing and the queue of
 * agent audio per call. Read with the rest of the edge's config (`config.ts`).
 */
import { BARGE_IN_MODES, SettingError, readSettings, setting } from "@ozen/shared";
import type { BargeInMode, SettingsEnv } from "@ozen/shared";

export interface VoiceConfig {
  readonly bargeIn: BargeInMode;
  /** Agent audio allowed in Twilio's buffer, ms. */
  readonly leadMs: number;
  /** Agent audio waiting at the edge per call, at most, ms. */
  readonly queueMs: number;
  /** A greeting file's URL per Twilio AccountSid (played instead of the built-in chime). */
  readonly greetingUrls: ReadonlyMap<string, string>;
}

export const VOICE_SETTINGS = {
  BARGE_IN: setting.choice({
    description:
      "When the edge cuts the agent's audio itself: `meaningful` (a meaningful partial), `speech` (voice activity onset) or `off`.",
    values: BARGE_IN_MODES,
    default: "meaningful",
  }),
  PLAYBACK_LEAD_MS: setting.int({
    description: "Agent audio sent ahead of what Twilio has played, at most, ms (the rest waits at the edge).",
    default: 1000,
    min: 100,
    max: 10_000,
  }),
  PLAYBACK_QUEUE_MS: setting.int({
    description: "Agent audio waiting at the edge per call, at most, ms; a chunk past it is refused (`queue_full`).",
    default: 60_000,
    min: 1000,
    max: 600_000,
  }),
  GREETING_ACCOUNTS: setting.string({
    description:
      'Per Twilio AccountSid, a greeting file played instead of the chime with `GREETING=asset`: JSON `{"AC...": "https://host/greeting.wav"}` (a WAV or raw audio as `POST /calls/{CallSid}/play` takes it; fetched once per isolate).',
  }),
} as const;

const GREETING_SHAPE = 'JSON {"AC...": "https://host/file.wav", ...}';

function greetingUrls(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined) return out;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new SettingError({
      setting: "GREETING_ACCOUNTS",
      value: raw,
      problem: "is not JSON",
      expected: GREETING_SHAPE,
    });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new SettingError({ setting: "GREETING_ACCOUNTS", value: raw, expected: GREETING_SHAPE });
  }
  for (const [account, url] of Object.entries(v)) {
    if (typeof url !== "string" || !/^https?:\/\/[^/?#]+/.test(url)) {
      throw new SettingError({ setting: `GREETING_ACCOUNTS.${account}`, value: url, expected: "an http(s) URL" });
    }
    out.set(account, url);
  }
  return out;
}

export function loadVoiceConfig(env: SettingsEnv): VoiceConfig {
  const s = readSettings(VOICE_SETTINGS, env);
  return {
    bargeIn: s.BARGE_IN,
    leadMs: s.PLAYBACK_LEAD_MS,
    queueMs: s.PLAYBACK_QUEUE_MS,
    greetingUrls: greetingUrls(s.GREETING_ACCOUNTS),
  };
}
