/**
 * The call's stats (adapter): the lifecycle, the handler's and the decode's time, the feed
 * cadence and buffering of blocks, put together with the ingest's, the outbound side's, the
 * relay link's and the event stream's counters into the record `GET /calls/{CallSid}/stats`
 * answers (`stats.ts`), and written to the object's storage so it outlives the call.
 */
import { LatencyWindow } from "@ozen/shared";
import type { IngestCounters } from "@ozen/shared";
import { newRelayLinkStats } from "./stats.js";
import type { CallEventStats, CallState, CallStats } from "./stats.js";
import type { OutboundCounters } from "./outbound.js";
import type { RelayLink } from "./relay-link.js";

/** Counters are written to storage at most this often while the call runs. */
const PERSIST_EVERY_MS = 1000;
/** A block's first frame carried this much audio, already that old when it arrived. */
const FRAME_MS = 20;

/** The counters the call's other parts keep, read at each snapshot. */
export interface StatsParts {
  readonly ingest: IngestCounters;
  readonly outbound: OutboundCounters;
  readonly relay: RelayLink | undefined;
  readonly eventStream: CallEventStats;
  readonly voice?: CallStats["voice"];
}

export class CallStatsRecorder {
  callSid = "";
  streamSid = "";
  state: CallState = "waiting";
  startedAtMs: number | null = null;
  endedAtMs: number | null = null;
  endReason: string | null = null;
  blocksMade = 0;
  /** Blocks the runner never acknowledged after the call ended (the relay link's answer to stop). */
  relayLostAtEnd = 0;
  private handlerMsTotal = 0;
  private handlerMsMax = 0;
  private decodeMsTotal = 0;
  /** Transcript events from the runner, by type. */
  private readonly events: Record<string, number> = {};
  private readonly blockInterval = new LatencyWindow(1024);
  private readonly blockHeld = new LatencyWindow(1024);
  /** Date.now() when the last full block went to a connected runner; 0 when the run was broken. */
  private lastLiveBlockAtMs = 0;
  private lastPersistMs = 0;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly blockMs: number,
    private readonly parts: () => StatsParts,
  ) {}

  /** One Twilio message took `ms` to handle. */
  handled(ms: number): void {
    this.handlerMsTotal += ms;
    if (ms > this.handlerMsMax) this.handlerMsMax = ms;
  }

  /** One media frame's audio took `ms` to put into blocks. */
  decoded(ms: number): void {
    this.decodeMsTotal += ms;
  }

  /** A transcript event of `type` came from the runner. */
  countEvent(type: string): void {
    this.events[type] = (this.events[type] ?? 0) + 1;
  }

  /**
   * Feed cadence and buffering of a full block handed to the relay link at `nowMs` (whole-ms
   * clock): `openedAtMs` when it took its first audio, `connected` whether the runner is there.
   */
  fullBlock(nowMs: number, openedAtMs: number, connected: boolean): void {
    this.blockHeld.record(nowMs - openedAtMs + FRAME_MS);
    if (!connected) {
      this.lastLiveBlockAtMs = 0; // replayed later in a burst: not the live cadence
      return;
    }
    if (this.lastLiveBlockAtMs !== 0) this.blockInterval.record(nowMs - this.lastLiveBlockAtMs);
    this.lastLiveBlockAtMs = nowMs;
  }

  snapshot(): CallStats {
    const { ingest, outbound, relay, eventStream, voice } = this.parts();
    return {
      callSid: this.callSid,
      streamSid: this.streamSid,
      state: this.state,
      startedAtMs: this.startedAtMs,
      endedAtMs: this.endedAtMs,
      endReason: this.endReason,
      ...ingest,
      handlerMsTotal: this.handlerMsTotal,
      handlerMsMax: this.handlerMsMax,
      decodeMsTotal: this.decodeMsTotal,
      ...outbound,
      blocksMade: this.blocksMade,
      decode: "table",
      blockMs: this.blockMs,
      blockIntervalMs: this.blockInterval.summary(),
      blockHeldMs: this.blockHeld.summary(),
      relay: {
        ...(relay?.stats ?? newRelayLinkStats()),
        pendingBlocks: relay?.pendingBlocks ?? 0,
        unacknowledged: relay?.unacknowledgedBlocks ?? 0,
        lostAtEnd: this.relayLostAtEnd,
      },
      relayRttMs: relay?.rtt.summary() ?? { count: 0, p50: null, p99: null, max: null, mean: null },
      relayRttMsHistogram: relay?.rttHistogram ?? {},
      events: this.events,
      eventStream,
      ...(voice ? { voice } : {}),
    };
  }

  /** Writes the snapshot to storage (without holding outgoing messages for the write). */
  persist(nowMs: number): void {
    this.lastPersistMs = nowMs;
    void this.storage.put("stats", this.snapshot(), { allowUnconfirmed: true });
  }

  /** Persists when the last write is PERSIST_EVERY_MS old. */
  persistEvery(nowMs: number): void {
    if (nowMs - this.lastPersistMs >= PERSIST_EVERY_MS) this.persist(nowMs);
  }

  /** The live snapshot while this object holds the call; else the last one written. */
  async read(live: boolean): Promise<CallStats | { state: "unknown" }> {
    if (live) return this.snapshot();
    return (await this.storage.get<CallStats>("stats")) ?? { state: "unknown" };
  }
}
