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
 * - a detached call (its socket gone) waits `resumeGraceMs` for the edge, then ends; its engine
 *   session only `engineGraceMs` (then it is parked: ended, its words kept, a new session opened
 *   when the edge comes back), since an edge that went to another instance cannot say so; a draining
 *   runner tells the call's edge to go elsewhere (`goaway`, close 1012) and sets no grace, and
 *   refuses new sockets in their upgrade (`admitSocket`: HTTP 503 with `Retry-After`) and a
 *   `start` on a socket accepted before the drain began (`admitStartWhileDraining`: goaway, 1012);
 * - when the call ends, everything the engine will say is said: all audio is committed;
 * - one socket carries one call (`admitStart`): the call its credential was signed for, one
 *   `start`; a second start, or a start for another call, closes the socket (RELAY_CLOSE);
 * - with `guard` set (the runner always sets it): a block whose seq jumps further ahead of the
 *   next expected seq than the edge's relay buffer holds is refused (`out_of_window`: never fed,
 *   never acknowledged, the expected seq stays; the adapter answers with an error and closes the
 *   socket, and the edge replays from what was committed); audio beyond the call's pace
 *   (`too_fast`, `pacing.ts`) changes nothing either: the adapter holds it until `paceDueMs`, a
 *   bounded while, then refuses like an out-of-window block;
 * - events the call's engine produces while no socket is attached are kept (bounded) and handed
 *   to the next socket of the call first (`reattach`); what a call that ends detached still holds
 *   is lost, and `CallTombstones` remembers how much for the edge's close-out.
 */
import { AudioPacer } from "./pacing.js";
import { RELAY_CLOSE, encodeControl } from "./wire.js";
import type { RelayCloseCode, RelayEventsLost, RelayStart } from "./wire.js";

/** The runner's relay counters, as its `/stats` and `/metrics` show them (all calls summed). */
export interface RelayReceiverCounters {
  /** Calls the runner opened an engine session for. */
  callsStarted: number;
  /** Starts that resumed a call: on a new socket for a call held, or a new call from a seq > 0. */
  callsResumed: number;
  /** Calls ended (stop from the edge, or no edge within the grace). */
  callsEnded: number;
  /**
   * Relay sockets refused because the runner was draining: upgrades (HTTP 503, before the
   * handshake), and starts on a socket accepted just before the drain began (`goaway`, close 1012).
   */
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
  /** Starts refused: a second start on a socket, a start for another call than the credential's, a bad start. */
  startsRefused: number;
  /** Starts of new calls refused because the runner held `OZEN_MAX_CALLS` calls (closed 4007). */
  startsAtCapacity: number;
  /** Calls a newer socket of theirs took over from a live one (the old socket is closed). */
  callsTakenOver: number;
  /** Blocks refused: their seq jumped past the relay buffer's worth ahead of the next expected one. */
  blocksOutOfWindow: number;
  /** Blocks that waited for their pace: the call was fed faster than real time beyond the relay buffer's worth. */
  blocksPaced: number;
  /** Blocks refused: the call kept coming faster than real time while its blocks waited (their socket closed). */
  blocksTooFast: number;
  /** Events kept while their call had no socket, then handed to its next socket. */
  eventsHandedOver: number;
  /** Events of calls that ended with no socket to take them (or that overflowed the keep): lost. */
  eventsUndelivered: number;
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
    startsRefused: 0,
    startsAtCapacity: 0,
    callsTakenOver: 0,
    blocksOutOfWindow: 0,
    blocksPaced: 0,
    blocksTooFast: 0,
    eventsHandedOver: 0,
    eventsUndelivered: 0,
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

/** Seconds a refused upgrade is told to wait (`Retry-After`): the front end has other instances now. */
export const DRAINING_RETRY_AFTER_S = 1;

/**
 * An upgrade the runner refuses before the WebSocket handshake: no socket, no session. The front
 * end (HAProxy, Cloud Run) may retry the request on another instance; the edge's link counts it
 * as a failed dial and redials with backoff, keeping every block.
 */
export interface RelayUpgradeRefusal {
  /** The HTTP status of the answer (503: this instance is going). */
  readonly status: 503;
  /** The `Retry-After` header's value, seconds. */
  readonly retryAfterS: number;
  /** The reason, for the counters by reason and the answer's body. */
  readonly reason: "draining";
  /** The answer's body: what happened and what to do. */
  readonly message: string;
}

const REFUSED_DRAINING: RelayUpgradeRefusal = {
  status: 503,
  retryAfterS: DRAINING_RETRY_AFTER_S,
  reason: "draining",
  message: `${DRAINING_REASON}: it takes no new relay sockets; dial again (the front end routes to another instance)`,
};

/**
 * Whether the runner takes a new relay socket: undefined when it does, else the HTTP answer that
 * refuses its upgrade (counted in `callsRefused`). Refused while `draining`.
 */
export function admitSocket(draining: boolean, counters: RelayReceiverCounters): RelayUpgradeRefusal | undefined {
  if (!draining) return undefined;
  counters.callsRefused++;
  return REFUSED_DRAINING;
}

/**
 * Whether the runner takes a `start` on a socket it accepted (the upgrade came before the drain
 * began, the start after it): undefined when it is not `draining`, else how to close the socket
 * (`goaway`, then 1012, as the drain tells its calls: the edge redials through the front end with
 * backoff, keeping the call's audio), counted in `callsRefused` like a refused upgrade. A start
 * for a call the runner holds is refused too: its upgrade a moment later would have been.
 */
export function admitStartWhileDraining(draining: boolean, counters: RelayReceiverCounters): RelayClosing | undefined {
  if (!draining) return undefined;
  counters.callsRefused++;
  return GOAWAY_DRAINING; // the socket carries no call: closed at once, not held like a call's
}

/** The last word to a socket the runner closes for `code` (an `error`, then the close). */
export function relayClosing(code: RelayCloseCode, message: string): RelayClosing {
  const c = RELAY_CLOSE[code];
  return { text: encodeControl({ type: "error", code, message }), code: c.code, reason: c.reason };
}

/** Block sizes and rates a start may name. */
const BLOCK_MS_RANGE = [10, 1000] as const;
const SAMPLE_RATES_HZ: readonly number[] = [8000, 16000];

/**
 * Whether a socket may take `start`: undefined when it may, else how to close it (counted in
 * `startsRefused`). `credentialCallSid`: the call the socket's credential opens (undefined when
 * relay authentication is off: any call); `carriesCall`: the socket took a start already.
 */
export function admitStart(
  start: RelayStart,
  credentialCallSid: string | undefined,
  carriesCall: boolean,
  counters: RelayReceiverCounters,
): RelayClosing | undefined {
  let closing: RelayClosing | undefined;
  if (carriesCall) {
    closing = relayClosing("second_start", "this socket carries a call already: one call per socket");
  } else if (credentialCallSid !== undefined && start.callSid !== credentialCallSid) {
    closing = relayClosing("call_mismatch", "start.callSid is not the call this socket's credential was signed for");
  } else if (
    !Number.isInteger(start.blockMs) ||
    start.blockMs < BLOCK_MS_RANGE[0] ||
    start.blockMs > BLOCK_MS_RANGE[1] ||
    !SAMPLE_RATES_HZ.includes(start.sampleRateHz) ||
    !Number.isInteger(start.resumeFromSeq) ||
    start.resumeFromSeq < 0 ||
    start.resumeFromSeq > 0xffffffff
  ) {
    closing = relayClosing(
      "bad_start",
      `start names blockMs ${start.blockMs} (expected ${BLOCK_MS_RANGE[0]}..${BLOCK_MS_RANGE[1]}), sampleRateHz ` +
        `${start.sampleRateHz} (expected ${SAMPLE_RATES_HZ.join(" or ")}), resumeFromSeq ${start.resumeFromSeq}`,
    );
  }
  if (closing) counters.startsRefused++;
  return closing;
}

/**
 * What became of an audio block: `feed` it to the engine, `gap`: feed it, blocks before it
 * never came (counted); `duplicate`: the engine has it already (a replay), do not feed it;
 * `out_of_window`: refused; `too_fast`: not yet (not fed, not acknowledged, nothing moves: see
 * `guard` and `paceDueMs`).
 */
export type AudioVerdict = "feed" | "gap" | "duplicate" | "out_of_window" | "too_fast";

/** The runner's bounds on what one call's edge may send (see `RelayReceiverOptions.guard`). */
export interface RelayGuard {
  /**
   * The edge's relay buffer, ms (its RELAY_BUFFER_MS, or more): a seq may jump at most this much
   * audio past the next expected one, and a call may be fed this much audio ahead of real time.
   */
  readonly relayBufferMs: number;
  /** Wall time the runner took the call, ms: the pacing's start. */
  readonly startedAtMs: number;
}

export interface RelayReceiverOptions {
  /** How long a call whose socket went away waits for the edge, ms. */
  readonly resumeGraceMs: number;
  /**
   * How long a detached call keeps its engine session, ms (default `resumeGraceMs`): past it the
   * session is ended (`due` says `park`), its last words kept with the call's other events for the
   * rest of the grace, and a new session opened if the edge comes back. A call whose edge went to
   * another instance (it cannot tell this one) holds an engine, and a place, this long at most.
   */
  readonly engineGraceMs?: number;
  /** Bounds on seqs and pace; without it neither is bounded (the delivery rules alone). */
  readonly guard?: RelayGuard;
  /** Events kept at most for a call with no socket (default 2000); past it the oldest partials go first. */
  readonly maxUndeliveredEvents?: number;
}

/** What kind of event a kept text is: partials and meaningful events are dropped first, finals counted. */
export type UndeliveredKind = "partial" | "final" | "other";

const DEFAULT_MAX_UNDELIVERED = 2000;

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
  /** Wall time the detached call's engine session is to be ended (parked), ms. */
  private parkAtMs: number | undefined;
  private engineParked = false;
  private draining = false;
  private ended = false;
  private attached = true;
  private readonly pacer: AudioPacer | undefined;
  private readonly windowBlocks: number;
  private readonly sampleRateHz: number;
  private readonly blockSamples: number;
  /** Event texts produced while no socket was attached, oldest first, with their kinds. */
  private readonly undelivered: { text: string; kind: UndeliveredKind }[] = [];
  private readonly dropped: { events: number; finals: number } = { events: 0, finals: 0 };

  /** A new call: `start` opens it, from `start.resumeFromSeq` (0, or later when the edge resumes it here). */
  constructor(
    start: RelayStart,
    private readonly counters: RelayReceiverCounters,
    private readonly o: RelayReceiverOptions,
  ) {
    this.callSid = start.callSid;
    this.expected = start.resumeFromSeq;
    this.committed = start.resumeFromSeq - 1;
    this.sampleRateHz = start.sampleRateHz;
    this.blockSamples = Math.round((start.blockMs * start.sampleRateHz) / 1000);
    const guard = o.guard;
    this.pacer = guard ? new AudioPacer(guard.startedAtMs, guard.relayBufferMs) : undefined;
    this.windowBlocks = guard ? Math.ceil(guard.relayBufferMs / Math.max(1, start.blockMs)) : Infinity;
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

  /**
   * Wall time something is due for the detached call (`due`), ms: its engine parked, or its grace
   * over; undefined while attached, or detached by a drain.
   */
  get nextDueMs(): number | undefined {
    if (this.parkAtMs !== undefined && this.graceEndsAtMs !== undefined)
      return Math.min(this.parkAtMs, this.graceEndsAtMs);
    return this.parkAtMs ?? this.graceEndsAtMs;
  }

  /** Whether the call's engine session was ended while it was detached (`parked`), none opened since. */
  get isParked(): boolean {
    return this.engineParked;
  }

  /**
   * What is due at `nowMs` for a detached call: `park` (end its engine session, keep the call),
   * `end` (its grace is over), or nothing.
   */
  due(nowMs: number): "park" | "end" | undefined {
    if (this.graceEndsAtMs !== undefined && nowMs >= this.graceEndsAtMs) return "end";
    if (this.parkAtMs !== undefined && nowMs >= this.parkAtMs) return "park";
    return undefined;
  }

  /**
   * The detached call's engine session ended (it said its last): every block fed is committed,
   * the session's words are kept for the edge (`keepUndelivered`). `reopened` follows when the
   * edge comes back and a new session takes the audio from `expectedSeq`.
   */
  parked(): void {
    this.parkAtMs = undefined;
    this.engineParked = true;
    this.finalAck();
  }

  /** A new engine session took the parked call, from `expectedSeq`. */
  reopened(): void {
    this.engineParked = false;
  }

  /**
   * The edge is back on a new socket (a `start` for this call). Its `resumeFromSeq` is not
   * needed: replayed blocks the engine has are recognised by seq. Returns the ack to send on the
   * new socket (so the edge may forget what the engine already has), or undefined before any
   * block. `committedSample` is the engine's, as for `ack`.
   */
  resume(committedSample: number | undefined): string | undefined {
    this.graceEndsAtMs = undefined;
    this.parkAtMs = undefined;
    this.attached = true;
    this.counters.callsResumed++;
    return this.expected > 0 ? this.ack(committedSample) : undefined;
  }

  /**
   * The edge is back on a new socket: what to send it, in order: the events kept while the call
   * had no socket (they happened first), then the ack (`resume`). `committedSample` as for `ack`.
   */
  reattach(committedSample: number | undefined): string[] {
    const out = this.undelivered.map((u) => u.text);
    this.counters.eventsHandedOver += out.length;
    this.undelivered.length = 0;
    const ack = this.resume(committedSample);
    if (ack !== undefined) out.push(ack);
    return out;
  }

  /**
   * What is wrong with an audio frame of `samples` at `sampleRateHz` for this call, or undefined:
   * a block is the start's rate and at most its `blockMs` long (the last may be shorter).
   */
  frameProblem(samples: number, sampleRateHz: number): string | undefined {
    if (sampleRateHz !== this.sampleRateHz)
      return `audio frame at ${sampleRateHz} Hz, the call's start says ${this.sampleRateHz}`;
    if (samples === 0 || samples > this.blockSamples) {
      return `audio frame has ${samples} samples, expected 1..${this.blockSamples} (blockMs of audio)`;
    }
    return undefined;
  }

  /**
   * With `guard`: the wall time, ms, from which a block of `samples` that came `too_fast` may be
   * fed (the adapter holds it until then); undefined without a guard.
   */
  paceDueMs(samples: number): number | undefined {
    return this.pacer?.dueMs((samples * 1000) / this.sampleRateHz);
  }

  /** Whether a socket is attached (false from `detached` until `resume`). */
  get isAttached(): boolean {
    return this.attached;
  }

  /**
   * An event (its relay text) the call produced while no socket was attached: kept for the next
   * socket, up to `maxUndeliveredEvents`; past it the oldest partial (or, when none, the oldest
   * event) is dropped and counted as lost.
   */
  keepUndelivered(text: string, kind: UndeliveredKind): void {
    const max = this.o.maxUndeliveredEvents ?? DEFAULT_MAX_UNDELIVERED;
    if (this.undelivered.length >= max) {
      let i = this.undelivered.findIndex((u) => u.kind === "partial");
      if (i < 0) i = 0;
      const [lost] = this.undelivered.splice(i, 1);
      this.dropped.events++;
      if (lost!.kind === "final") this.dropped.finals++;
      this.counters.eventsUndelivered++;
    }
    this.undelivered.push({ text, kind });
  }

  /**
   * The events of this call no edge got: those still kept plus those dropped from the keep.
   * Counted in `eventsUndelivered` when the call ends (`end`).
   */
  get eventsLost(): RelayEventsLost {
    let finals = this.dropped.finals;
    for (const u of this.undelivered) if (u.kind === "final") finals++;
    return { events: this.dropped.events + this.undelivered.length, finals };
  }

  /**
   * Audio block `seq` arrived at `nowMs` (wall ms; used with `guard`): `samples` samples from
   * `startSample` (call audio time, in samples). Counts it and, when it is new, records it as
   * uncommitted up to `startSample + samples`. A refused block changes nothing but its counter.
   */
  audio(seq: number, startSample: number, samples: number, nowMs = 0): AudioVerdict {
    if (seq < this.expected) {
      this.counters.duplicateBlocks++;
      return "duplicate";
    }
    if (seq - this.expected > this.windowBlocks) {
      this.counters.blocksOutOfWindow++;
      return "out_of_window";
    }
    if (this.pacer && !this.pacer.admit((samples * 1000) / this.sampleRateHz, nowMs)) return "too_fast";
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
    this.attached = false;
    if (this.draining || this.ended) return undefined;
    this.graceEndsAtMs = nowMs + this.o.resumeGraceMs;
    const engineGraceMs = this.o.engineGraceMs ?? this.o.resumeGraceMs;
    if (!this.engineParked && engineGraceMs < this.o.resumeGraceMs) this.parkAtMs = nowMs + engineGraceMs;
    return this.nextDueMs;
  }

  /** True when the call is detached and its grace is over at `nowMs`: end it. */
  expired(nowMs: number): boolean {
    return this.due(nowMs) === "end";
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
    this.parkAtMs = undefined;
    this.counters.callsEnded++;
    return true;
  }

  /**
   * The call is gone from the runner (its engine said its last): the events no edge got are
   * counted as lost and returned (for a tombstone); the keep is emptied.
   */
  forget(): RelayEventsLost {
    const lost = this.eventsLost;
    this.counters.eventsUndelivered += this.undelivered.length;
    this.undelivered.length = 0;
    return lost;
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

/**
 * Calls the runner gave up on with events no edge received: a small bounded memory (oldest
 * forgotten first), each kept `keepMs`, so that a later start for the call (the edge's
 * close-out after a restart) is told how many were lost (`error` code `events_lost`). Pure.
 */
export class CallTombstones {
  private readonly byCall = new Map<string, { lost: RelayEventsLost; untilMs: number }>();

  constructor(
    readonly maxCalls = 10_000,
    readonly keepMs = 10 * 60_000,
  ) {}

  get size(): number {
    return this.byCall.size;
  }

  /** Remembers at `nowMs` that `callSid` lost `lost` (nothing when nothing was lost). */
  remember(callSid: string, lost: RelayEventsLost, nowMs: number): void {
    if (lost.events === 0) return;
    this.byCall.delete(callSid);
    if (this.byCall.size >= this.maxCalls) this.byCall.delete(this.byCall.keys().next().value!);
    this.byCall.set(callSid, { lost, untilMs: nowMs + this.keepMs });
  }

  /**
   * The `events_lost` error text for a start of `callSid` at `nowMs`, once (the tombstone is
   * consumed), or undefined when the runner remembers no loss for it.
   */
  take(callSid: string, nowMs: number): string | undefined {
    const t = this.byCall.get(callSid);
    if (!t) return undefined;
    this.byCall.delete(callSid);
    if (t.untilMs < nowMs) return undefined;
    return encodeControl({
      type: "error",
      code: "events_lost",
      message:
        `the runner gave up on this call before its edge came back: ${t.lost.events} transcript events ` +
        `(${t.lost.finals} finals) were never delivered`,
      lost: t.lost,
    });
  }
}
