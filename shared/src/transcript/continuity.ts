/**
 * One transcript per call across runner sessions. When the runner that transcribes a call dies,
 * the edge replays the audio not yet committed (everything after the last final) to a new
 * runner, whose transcript policy starts over: `call.started` again, utterance ids from `u1`
 * again, and possibly the last final again (when it was sent but its commit was not
 * acknowledged before the runner died). This state machine, fed the runner's events in arrival
 * order, makes the call's stream read as if one runner had done it all:
 * - utterance ids are the edge's own, `${callSid}:u${n}` with n = 1, 2, ... in delivery order
 *   (from `firstUtteranceN` when the call's object restarted: ids it gave before are never
 *   given again, so a record kept by id is never overwritten by another utterance);
 *   the first utterance of a new runner session continues the utterance the old one left open
 *   (partials but no final), keeping its id and carrying on its partial `seq`;
 * - a final that ends at or before the end of the last final delivered is a duplicate: dropped;
 *   so are partials and meaningful events for audio already finalized;
 * - `call.started` and `call.ended` are delivered once; a second `meaningful` for an utterance
 *   is dropped.
 * Pure: no I/O, no clock.
 */
import type { TranscriptEvent, UtteranceEvent } from "./events.js";
import { isUtteranceEvent, utteranceIdOf } from "./events.js";

export type ContinuityDrop =
  "duplicate_final" | "stale_partial" | "duplicate_meaningful" | "duplicate_call_started" | "duplicate_call_ended";

export interface ContinuityCounters {
  /** Runner sessions seen for the call (`call.started` events). */
  runnerSessions: number;
  /** Events dropped, by reason. */
  dropped: Partial<Record<ContinuityDrop, number>>;
  /** Finals delivered that start before the end of the previous final (replayed audio overlap). */
  overlappingFinals: number;
}

interface OpenUtterance {
  readonly id: string;
  nextSeq: number;
  meaningful: boolean;
}

export class TranscriptContinuity {
  readonly counters: ContinuityCounters = { runnerSessions: 0, dropped: {}, overlappingFinals: 0 };
  private started = false;
  private ended = false;
  private lastFinalEndMs = -1;
  private nextN: number;
  /** The runner session's utterance ids -> the edge's open utterances. */
  private readonly byRunnerId = new Map<string, OpenUtterance>();
  /** The utterance a previous runner session left without a final, for the new session's first. */
  private carried: OpenUtterance | undefined;
  private lastOpened: OpenUtterance | undefined;

  /**
   * `firstUtteranceN`: the n of the first utterance id this continuity gives (default 1); the
   * adapter passes one past the highest it ever gave for the call.
   */
  constructor(
    private readonly callSid: string,
    o: { readonly firstUtteranceN?: number } = {},
  ) {
    const first = o.firstUtteranceN ?? 1;
    if (!Number.isSafeInteger(first) || first < 1) throw new RangeError(`firstUtteranceN is ${first}, expected n >= 1`);
    this.nextN = first;
  }

  /** The n the next new utterance id gets. */
  get nextUtteranceN(): number {
    return this.nextN;
  }

  /** The event to deliver for `e` (ids and seq rewritten), or the reason it is dropped. */
  accept(e: TranscriptEvent): { event: TranscriptEvent } | { drop: ContinuityDrop } {
    switch (e.type) {
      case "call.started":
        this.counters.runnerSessions++;
        // a new runner session: its utterance ids mean nothing to the previous session's
        this.carried = this.lastOpened;
        this.byRunnerId.clear();
        if (this.started) return this.drop("duplicate_call_started");
        this.started = true;
        return { event: e };
      case "call.ended":
        if (this.ended) return this.drop("duplicate_call_ended");
        this.ended = true;
        return { event: e };
      case "engine.switched":
        return { event: e };
      default:
        // speech activity and the edge's own voice events pass as they are
        return isUtteranceEvent(e) ? this.utterance(e) : { event: e };
    }
  }

  private utterance(e: UtteranceEvent): { event: TranscriptEvent } | { drop: ContinuityDrop } {
    if (e.audioEndMs <= this.lastFinalEndMs) {
      return this.drop(e.type === "final" ? "duplicate_final" : "stale_partial");
    }
    let u = this.byRunnerId.get(e.utteranceId);
    if (!u) {
      u = this.carried ?? { id: utteranceIdOf(this.callSid, this.nextN++), nextSeq: 0, meaningful: false };
      this.carried = undefined;
      this.byRunnerId.set(e.utteranceId, u);
      this.lastOpened = u;
    }
    switch (e.type) {
      case "partial":
        return { event: { ...e, utteranceId: u.id, seq: u.nextSeq++ } };
      case "meaningful":
        if (u.meaningful) return this.drop("duplicate_meaningful");
        u.meaningful = true;
        return { event: { ...e, utteranceId: u.id, seq: Math.max(0, u.nextSeq - 1) } };
      case "final":
        if (e.audioStartMs < this.lastFinalEndMs) this.counters.overlappingFinals++;
        this.lastFinalEndMs = e.audioEndMs;
        this.byRunnerId.delete(e.utteranceId);
        if (this.lastOpened === u) this.lastOpened = undefined;
        return { event: { ...e, utteranceId: u.id } };
    }
  }

  private drop(reason: ContinuityDrop): { drop: ContinuityDrop } {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    return { drop: reason };
  }
}
