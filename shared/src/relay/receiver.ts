/**
 * The runner's side of the relay's delivery protocol for one call, sans-IO (h11/wsproto style):
 * fed the call's audio block numbers, its engine's commit point and `nowMs`, it says which block
 * to feed the engine, what to acknowledge and when the call's grace is over. It never touches a
 * socket, a timer or a clock; the adapter (stt-runner `RunnerCall`) owns those.
 *
 * The protocol, runner side:
 * - a call outlives its socket: the edge may come back on a new socket (`start` for a call the
 *   runner holds: `resume`) and replay every block it kept. Blocks are de-duplicated by seq, so
 *   the engine sees every block once and in order; a seq past the next expected one counts the
 *   blocks skipped as a gap (the edge lost them) and goes on from it;
 * - every block fed is uncommitted until the engine's committed sample reaches its end (its
 *   words are in finals, or the engine keeps nothing of it); the ack says arrival (`seq`: every
 *   block up to it arrived) and commit (`committedSeq`);
 * - acks: one per audio frame (duplicates too: the edge times its round trip on them) and one
 *   after each final the engine gives (the commit point moved), as before this core existed;
 * - a detached call (its socket gone) waits `resumeGraceMs` for the edge, then ends; a draining
 *   runner tells the call's edge to go elsewhere (`goaway`, close 1012) and sets no grace;
 * - when the call ends, everything the engine will say is said: all audio is committed.
 *
 * Where later checks go: a start is taken in the constructor (a new call) or `resume` (a call
 * the runner holds), where a credential bound to one call is checked; `audio` is where a seq too
 * far ahead of the commit point is refused; `detached`/`expired` bound a session's life.
 */
import { encodeControl } from "./wire.js";
import type { RelayStart } from "./wire.js";

/** The runner's relay counters, as its `/stats` and `/metrics` show them (all calls summed). */
export interface RelayReceiverCounters {
  /** Calls the runner opened an engine session for. */
  callsStarted: number;
  /** Starts that resumed a call: on a new socket for a call held, or a new call from a seq > 0. */
  callsResumed: number;
  /** Calls ended (stop from the edge, or no edge within the grace). */
  callsEnded: number;
  /** Sockets refused because the runner was draining. */
  callsRefused: number;
  /** Blocks fed to an engine. */
  blocks: number;
  /** Blocks that arrived again (replays after a reconnect): not fed. */
  duplicateBlocks: number;
  /** Blocks that never arrived: seqs skipped between two blocks fed. */
  gapBlocks: number;
  /** Samples fed to engines. */
  audioSamples: number;
  /** Edge messages that could not be used (counted by the adapter that parses them). */
  protocolErrors: number;
}

export function newRelayReceiverCounters(): RelayReceiverCounters {
  return {
    callsStarted: 0,
    callsResumed: 0,
    callsEnded: 0,
    callsRefused: 0,
    blocks: 0,
    duplicateBlocks: 0,
    gapBlocks: 0,
    audioSamples: 0,
    protocolErrors: 0,
  };
}

/** A socket the runner closes with a last word: send `text`, then close with `code` and `reason`. */
export interface RelayClosing {
  readonly text: string;
  readonly code: number;
  readonly reason: string;
}

const DRAINING_REASON = "runner instance is shutting down";

/** Goodbye to a call's edge when the runner drains: reconnect (the platform routes elsewhere). */
const GOAWAY_DRAINING: RelayClosing = {
  text: encodeControl({ type: "goaway", reason: DRAINING_REASON }),
  code: 1012,
  reason: "service restart",
};

/** A new socket while the runner drains: not taken. */
const REFUSED_DRAINING: RelayClosing = {
  text: encodeControl({ type: "goaway", reason: DRAINING_REASON }),
  code: 1013,
  reason: "try again later",
};

/**
 * Whether the runner takes a new relay socket: undefined when it does, else how to refuse it
 * (counted in `callsRefused`). Refused while `draining`.
 */
export function admitSocket(draining: boolean, counters: RelayReceiverCounters): RelayClosing | undefined {
  if (!draining) return undefined;
  counters.callsRefused++;
  return REFUSED_DRAINING;
}

/**
 * What became of an audio block: `feed` it to the engine, `gap`: feed it, blocks before it
 * never came (counted); `duplicate`: the engine has it already (a replay), do not feed it.
 */
export type AudioVerdict = "feed" | "gap" | "duplicate";

export interface RelayReceiverOptions {
  /** How long a call whose socket went away waits for the edge, ms. */
  readonly resumeGraceMs: number;
}

/** One call's delivery state at the runner, across the sockets the edge opens for it. */
export class RelayReceiver {
  readonly callSid: string;
  private expected: number;
  private committed: number;
  /**
   * Blocks fed but not committed, oldest first, at [head, tail): seq and end sample (exclusive).
   * Slots are reused (nothing allocated per block once the arrays have grown).
   */
  private readonly uncommittedSeq: number[] = [];
  private readonly uncommittedEnd: number[] = [];
  private head = 0;
  private tail = 0;
  private graceEndsAtMs: number | undefined;
  private draining = false;
  private ended = false;

  /** A new call: `start` opens it, from `start.resumeFromSeq` (0, or later when the edge resumes it here). */
  constructor(
    start: RelayStart,
    private readonly counters: RelayReceiverCounters,
    private readonly o: RelayReceiverOptions,
  ) {
    this.callSid = start.callSid;
    this.expected = start.resumeFromSeq;
    this.committed = start.resumeFromSeq - 1;
    if (start.resumeFromSeq > 0) counters.callsResumed++;
    counters.callsStarted++;
  }

  /** The next seq the engine should see. */
  get expectedSeq(): number {
    return this.expected;
  }

  /** The last seq whose audio the engine is done with (-1 before any). */
  get committedSeq(): number {
    return this.committed;
  }

  /** Wall time the detached call's grace ends, ms; undefined while attached, or detached by a drain. */
  get nextDueMs(): number | undefined {
    return this.graceEndsAtMs;
  }

  /**
   * The edge is back on a new socket (a `start` for this call). Its `resumeFromSeq` is not
   * needed: replayed blocks the engine has are recognised by seq. Returns the ack to send on the
   * new socket (so the edge may forget what the engine already has), or undefined before any
   * block. `committedSample` is the engine's, as for `ack`.
   */
  resume(committedSample: number | undefined): string | undefined {
    this.graceEndsAtMs = undefined;
    this.counters.callsResumed++;
    return this.expected > 0 ? this.ack(committedSample) : undefined;
  }

  /**
   * Audio block `seq` arrived: `samples` samples from `startSample` (call audio time, in samples).
   * Counts it and, when it is new, records it as uncommitted up to `startSample + samples`.
   */
  audio(seq: number, startSample: number, samples: number): AudioVerdict {
    if (seq < this.expected) {
      this.counters.duplicateBlocks++;
      return "duplicate";
    }
    const skipped = seq - this.expected;
    if (skipped > 0) this.counters.gapBlocks += skipped;
    this.expected = seq + 1;
    this.counters.blocks++;
    this.counters.audioSamples += samples;
    this.uncommittedSeq[this.tail] = seq;
    this.uncommittedEnd[this.tail] = startSample + samples;
    this.tail++;
    return skipped > 0 ? "gap" : "feed";
  }

  /**
   * The ack text frame: arrival up to the last block fed, commit up to the last block that ends
   * at or before `committedSample` (the engine's committed sample; undefined: the engine keeps
   * no audio, everything fed is committed).
   */
  ack(committedSample: number | undefined): string {
    let n = this.head;
    const end = this.tail;
    while (n < end && (committedSample === undefined || this.uncommittedEnd[n]! <= committedSample)) n++;
    if (n > this.head) {
      this.committed = this.uncommittedSeq[n - 1]!;
      this.head = n;
      this.compact();
    }
    return encodeControl({ type: "ack", seq: this.expected - 1, committedSeq: this.committed });
  }

  /**
   * The call's socket went away. Returns the wall time its grace ends, ms (`nowMs` +
   * `resumeGraceMs`), or undefined while draining (the runner is going, no grace).
   */
  detached(nowMs: number): number | undefined {
    if (this.draining || this.ended) return undefined;
    this.graceEndsAtMs = nowMs + this.o.resumeGraceMs;
    return this.graceEndsAtMs;
  }

  /** True when the call is detached and its grace is over at `nowMs`: end it. */
  expired(nowMs: number): boolean {
    return this.graceEndsAtMs !== undefined && nowMs >= this.graceEndsAtMs;
  }

  /**
   * The runner drains: what to tell the call's socket (goaway, close 1012). No grace starts
   * when it detaches (a grace already running runs on).
   */
  drain(): RelayClosing {
    this.draining = true;
    return GOAWAY_DRAINING;
  }

  /** The call ends (stop, or grace over): counted once; false when it had ended already. */
  end(): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.graceEndsAtMs = undefined;
    this.counters.callsEnded++;
    return true;
  }

  /**
   * The engine session is over: everything it will say is said, so all audio fed is committed.
   * Returns the last ack.
   */
  finalAck(): string {
    const end = this.tail;
    if (end > this.head) this.committed = this.uncommittedSeq[end - 1]!;
    this.head = end;
    this.compact();
    return encodeControl({ type: "ack", seq: this.expected - 1, committedSeq: this.committed });
  }

  /** Frees committed slots: all at once when none is left (the usual case), else in bulk. */
  private compact(): void {
    if (this.head === this.tail) {
      this.head = this.tail = 0;
    } else if (this.head >= 1024) {
      this.uncommittedSeq.copyWithin(0, this.head, this.tail);
      this.uncommittedEnd.copyWithin(0, this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
  }
}
