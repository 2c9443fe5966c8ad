/**
 * Settings of the agent's voice (`docs/agent-control.md`): barge-in, pacing and the queue of
 * agent audio per call. Read with the rest of the edge's config (`config.ts`).
 */
import { BARGE_IN_MODES, readSettings, setting } from "@ozen/shared";
import type { BargeInMode, SettingsEnv } from "@ozen/shared";

export interface VoiceConfig {
  readonly bargeIn: BargeInMode;
  /** Agent audio allowed in Twilio's buffer, ms. */
  readonly leadMs: number;
  /** Agent audio waiting at the edge per call, at most, ms. */
  readonly queueMs: number;
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
} as const;

export function loadVoiceConfig(env: SettingsEnv): VoiceConfig {
  const s = readSettings(VOICE_SETTINGS, env);
  return { bargeIn: s.BARGE_IN, leadMs: s.PLAYBACK_LEAD_MS, queueMs: s.PLAYBACK_QUEUE_MS };
}
