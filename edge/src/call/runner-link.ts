/**
 * The call's relay link to the runner, opened from the edge's settings and the stream's `start`
 * (adapter wiring): the runner's session starts with the call's identity and the stream's
 * custom parameters, and the link keeps RELAY_BUFFER_MS of audio for replay.
 */
import type { RelayStart, StartMessage } from "@ozen/shared";
import type { EdgeConfig } from "../config.js";
import { RelayLink } from "./relay-link.js";
import { runnerUpgradeHeaders } from "./runner-auth.js";
import type { RelayLinkOptions } from "./relay-link.js";

/** PCM the edge sends the runner: Twilio's 8 kHz, decoded to 16-bit little-endian. */
export const RELAY_SAMPLE_RATE_HZ = 8000;

/** A call's relay `start`, less what the link sets (`resumeFromSeq`). */
export type RelayStartBody = Omit<RelayStart, "v" | "type" | "resumeFromSeq">;

/** What the call does with what the link reports. */
export type RunnerLinkHooks = Pick<
  RelayLinkOptions,
  "onControl" | "onBlockDropped" | "onAcked" | "onInvalidEvent" | "log"
>;

/**
 * The relay `start` of the call `callSid` whose stream started with `m`; `customParameters` are
 * the stream's, less the call token; `phrases` its hints (`phrase-config.ts`).
 */
export function relayStartOf(
  config: EdgeConfig,
  callSid: string,
  m: StartMessage,
  customParameters: Record<string, string>,
  phrases: readonly string[] = [],
): RelayStartBody {
  return {
    callSid,
    streamSid: m.streamSid,
    accountSid: m.start.accountSid,
    sampleRateHz: RELAY_SAMPLE_RATE_HZ,
    encoding: "pcm16le",
    blockMs: config.blockMs,
    tracks: m.start.tracks,
    customParameters,
    phrases,
  };
}

/**
 * A link (not yet connected) for the call whose relay start is `start`. `o` is for the
 * close-out after an edge restart: the seq to go on from, and a link held open after its stop.
 */
export function runnerLink(
  config: EdgeConfig,
  start: RelayStartBody,
  hooks: RunnerLinkHooks,
  o: Pick<RelayLinkOptions, "firstSeq" | "closeWhenFinished"> = {},
): RelayLink {
  return new RelayLink({
    url: config.runnerUrl,
    relaySecret: config.relaySecret,
    start,
    maxPendingBlocks: Math.ceil(config.relayBufferMs / config.blockMs),
    backoffMinMs: config.relayBackoffMinMs,
    backoffMaxMs: config.relayBackoffMaxMs,
    upgradeHeaders: runnerUpgradeHeaders(config.runnerAuth),
    ...o,
    ...hooks,
  });
}
