/**
 * The shapes of a call's record and of its relay link's counters: plain data, so the Worker and
 * the tests that read `GET /calls/{CallSid}/stats` share them.
 */
import { newRelaySenderCounters } from "@ozen/shared";
import type { LatencySummary, MsHistogram, RelaySenderCounters } from "@ozen/shared";
import type { ContinuityCounters } from "@ozen/shared";
import type { FanoutTotals, SubscriberCounters } from "../events/subscribers.js";
import type { VoiceStats } from "./playback.js";
import type { ControlCounters } from "../events/control.js";

/** The relay link's counters: its sender's (`RelaySenderCounters`), same names and meanings. */
export type RelayLinkStats = RelaySenderCounters;

export function newRelayLinkStats(): RelayLinkStats {
  return newRelaySenderCounters();
}

export type CallState = "waiting" | "streaming" | "ended";

export interface CallStats {
  callSid: string;
  streamSid: string;
  state: CallState;
  startedAtMs: number | null;
  endedAtMs: number | null;
  endReason: string | null;
  framesIn: number;
  framesConcealed: number;
  /** Silence put in where Twilio's media timestamps jumped (frames lost before us). */
  gapFilledMs: number;
  /** Holes in the media timestamps left unfilled: filling them would have run ahead of wall time. */
  gapFillRefusedMs: number;
  audioMs: number;
  bad: Record<string, number>;
  sequenceGaps: number;
  sequenceMissing: number;
  sequenceOutOfOrder: number;
  otherTrackFrames: number;
  aheadOfRealtimeMsMax: number;
  /** Twilio message handler time, summed over every message and its most, ms (whole-ms clock). */
  handlerMsTotal: number;
  handlerMsMax: number;
  /**
   * Time spent putting media frames' audio into blocks (base64 + mu-law table decode, gap fill,
   * concealment), summed over every frame taken, ms. The Worker's clock moves in whole ms (and
   * not at all inside a handler on Cloudflare): summed over many frames it estimates the total
   * without bias; 0 says the clock never moved while decoding.
   */
  decodeMsTotal: number;
  greetingMs: number | null;
  greetingFrames: number;
  marksSent: number;
  marksEchoed: number;
  clears: number;
  dtmf: number;
  blocksMade: number;
  /** How the edge decodes mu-law: a 256-entry lookup table (playbook A), the only decoder it has. */
  decode: "table";
  /** PCM block size sent to the runner (BLOCK_MS), ms. */
  blockMs: number;
  /** Time between consecutive full blocks sent to a connected runner, ms: the engine's feed cadence. */
  blockIntervalMs: LatencySummary;
  /**
   * Age of a block's oldest audio when the edge hands the block to the relay link, ms: the edge's
   * buffering. A runner that is away holds blocks longer (`relay.pendingBlocks`, replays).
   */
  blockHeldMs: LatencySummary;
  /**
   * The relay link's counters, and gauges: `pendingBlocks` kept for replay, `unacknowledged` of
   * those sent and not yet committed by the runner, `lostAtEnd` never committed when the call ended.
   */
  relay: RelayLinkStats & { pendingBlocks: number; unacknowledged: number; lostAtEnd: number };
  relayRttMs: LatencySummary;
  relayRttMsHistogram: MsHistogram;
  /** Transcript events from the runner, by type. */
  events: Record<string, number>;
  /** The call's event stream: delivered events, continuity, subscribers (with drops), the hub. */
  eventStream?: CallEventStats;
  /** The agent's voice: utterances, frames, clears, refusals, barge-ins, control (`playback.ts`). */
  voice?: VoiceStats & { control: ControlCounters };
}

export interface CallEventStats {
  /** Runner events that failed `parseTranscriptEvent` (dropped, logged once). */
  invalid: number;
  /** Events delivered into the call's stream (after continuity), by type. */
  delivered: Record<string, number>;
  continuity: ContinuityCounters;
  subscribers: FanoutTotals & { list: SubscriberCounters[] };
  hub: HubForwarderStats;
}

export interface HubForwarderStats {
  forwarded: number;
  batches: number;
  failures: number;
  /** Events dropped because the hub fell behind or failed (by type). */
  dropped: Record<string, number>;
}
