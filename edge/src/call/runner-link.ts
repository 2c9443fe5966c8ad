/**
 * The call's relay link to the runner, opened from the edge's settings and the stream's `start`
 * (adapter wiring): the runner's session starts with the call's identity and the stream's
 * custom parameters, and the link keeps RELAY_BUFFER_MS of audio for replay.
 */
import type { StartMessage } from "@ozen/shared";
import type { EdgeConfig } from "../config.js";
import { RelayLink } from "./relay-link.js";
import { runnerUpgradeHeaders } from "./runner-auth.js";
import type { RelayLinkOptions } from "./relay-link.js";

/** PCM the edge sends the runner: Twilio's 8 kHz, decoded to 16-bit little-endian. */
export const RELAY_SAMPLE_RATE_HZ = 8000;

/** What the call does with what the link reports. */
export type RunnerLinkHooks = Pick<
  RelayLinkOptions,
  "onControl" | "onBlockDropped" | "onAcked" | "onInvalidEvent" | "log"
>;

/**
 * A link (not yet connected) for the call `callSid` whose stream started with `m`;
 * `customParameters` are the stream's, less the call token.
 */
export function runnerLink(
  config: EdgeConfig,
  callSid: string,
  m: StartMessage,
  customParameters: Record<string, string>,
  hooks: RunnerLinkHooks,
): RelayLink {
  return new RelayLink({
    url: config.runnerUrl,
    start: {
      callSid,
      streamSid: m.streamSid,
      accountSid: m.start.accountSid,
      sampleRateHz: RELAY_SAMPLE_RATE_HZ,
      encoding: "pcm16le",
      blockMs: config.blockMs,
      tracks: m.start.tracks,
      customParameters,
    },
    maxPendingBlocks: Math.ceil(config.relayBufferMs / config.blockMs),
    backoffMinMs: config.relayBackoffMinMs,
    backoffMaxMs: config.relayBackoffMaxMs,
    upgradeHeaders: runnerUpgradeHeaders(config.runnerAuth),
    ...hooks,
  });
}
