/**
 * One call at the runner (adapter): its engine session, the listener that turns results into
 * events, and the socket the edge reaches it on now. The delivery rules (de-duplication by seq,
 * gaps, the commit point, the acks, the seq window and the pace, the events kept while no
 * socket is attached, the grace of a detached call, goaway on drain) are `RelayReceiver`'s
 * (shared/src/relay/receiver.ts); this class owns the socket, the timer and the clock around it.
 */
import { RELAY_CLOSE, RelayReceiver, relayClosing } from "@ozen/shared";
import type {
  AudioFrame,
  RelayClosing,
  RelayEventsLost,
  RelayReceiverCounters,
  RelayStart,
  UndeliveredKind,
} from "@ozen/shared";
import type { WebSocket } from "ws";
import type { Engine, EngineListener, EngineSession } from "./engines/engine.js";
import type { Metrics } from "./metrics.js";
import { ArrivalClock } from "./transcripts.js";

export type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/**
 * A log line about bad input, rate-limited per call and `kind` (`LogLimiter`): the first is
 * logged, the rest are counted into a summary line.
 */
export type LimitedLog = (callSid: string, kind: string, msg: string, fields?: Record<string, unknown>) => void;

/** An engine listener the runner closes when the call ends (the transcript policy's `call.ended`). */
export type CallListener = EngineListener & { close?(): void };

/**
 * Sends a transcript event's relay text to the call's edge; `kind` says what it is (partials are
 * the first dropped when a detached call keeps too many; finals are counted when lost).
 */
export type EventSend = (text: string, kind?: UndeliveredKind) => void;

/**
 * Makes the engine listener of a call (the transcript policy and event delivery go here); gets
 * a `send` for relay text frames to the call's current socket (kept while it has none).
 */
export type ListenerFactory = (start: RelayStart, send: EventSend, clock: ArrivalClock) => CallListener;

export interface RunnerCallDeps {
  readonly engine: Engine;
  readonly listenerFor: ListenerFactory | undefined;
  readonly counters: RelayReceiverCounters;
  readonly metrics: Metrics;
  readonly log: Log;
  readonly logLimited: LimitedLog;
  /** How long the call waits for the edge after its socket went away, ms. */
  readonly resumeGraceMs: number;
  /** The edge's relay buffer, ms: the seq window and the pace's slack (`RelayGuard`). */
  readonly relayBufferMs: number;
  /** Audio that may wait for its pace, ms (`PACE_HOLD_MS`). */
  readonly paceHoldMs: number;
  /** The call is over and its session closed: forget it; `lost`: its events no edge received. */
  readonly onEnded: (call: RunnerCall, lost: RelayEventsLost) => void;
}

const NOOP_LISTENER: EngineListener = { interim() {}, final() {}, failed() {} };

/**
 * Audio of one call that may wait for its pace at most, ms (the default of `paceHoldMs`): blocks
 * ahead of the call's pace (faster than real time beyond the relay buffer) are held and fed when
 * due, so such a call gets a real-time share and no bursts. From a tenth of it waiting the call's
 * socket is not read (TCP flow control slows the sender down to the pace, with no reconnect and no
 * burst) until half of that was fed; what the socket had buffered still arrives and waits. Past
 * `paceHoldMs` waiting the socket is closed (4005): a socket reads about 4 s of audio (64 KB) at
 * a time, so 5 s is not reached by a sender that flow control slows.
 */
export const PACE_HOLD_MS = 5000;

export class RunnerCall {
  readonly start: RelayStart;
  private readonly delivery: RelayReceiver;
  private readonly session: EngineSession;
  private readonly listener: CallListener;
  private readonly clock = new ArrivalClock();
  /** The socket the edge reaches the call on now; undefined while it is away. */
  private ws: WebSocket | undefined;
  private expiry: ReturnType<typeof setTimeout> | undefined;
  private ending = false;
  /** Frames ahead of the call's pace, in order, fed when due (`PACE_HOLD_MS` of audio at most). */
  private readonly held: AudioFrame[] = [];
  private heldMs = 0;
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** The socket not read while audio waits for its pace (see `PACE_HOLD_MS`). */
  private paused: WebSocket | undefined;

  /** A new call from `start`, on socket `ws`. */
  constructor(
    start: RelayStart,
    ws: WebSocket,
    private readonly deps: RunnerCallDeps,
  ) {
    this.start = start;
    this.ws = ws;
    this.delivery = new RelayReceiver(start, deps.counters, {
      resumeGraceMs: deps.resumeGraceMs,
      guard: { relayBufferMs: deps.relayBufferMs, startedAtMs: Date.now() },
    });
    const listener =
      deps.listenerFor?.(start, (text, kind) => this.sendEvent(text, kind ?? "other"), this.clock) ?? NOOP_LISTENER;
    this.listener = listener;
    this.session = deps.engine.open(start, {
      interim: (r) => listener.interim(r),
      final: (r) => {
        listener.final(r);
        // a final moves the commit point: tell the edge it may forget that audio
        queueMicrotask(() => this.ack());
      },
      failed: (f) => listener.failed(f),
      switched: (x) => listener.switched?.(x),
      speech: (a) => listener.speech?.(a),
    });
  }

  get socket(): WebSocket | undefined {
    return this.ws;
  }

  /** What is wrong with `frame` for this call (its rate, or longer than a block), or undefined. */
  frameProblem(frame: AudioFrame): string | undefined {
    return this.delivery.frameProblem(frame.pcm.length, frame.sampleRateHz);
  }

  /**
   * The edge is back on socket `ws` (a `start` for this call, with the call's credential): an
   * older socket still open is closed (4004), then the new one gets the events kept while the
   * call had no socket, then the ack.
   */
  resume(ws: WebSocket): void {
    this.clearExpiry();
    this.dropHeld(); // the edge replays what it sent and was not acknowledged
    const old = this.ws;
    if (old && old !== ws) {
      this.deps.counters.callsTakenOver++;
      old.close(RELAY_CLOSE.replaced.code, RELAY_CLOSE.replaced.reason);
    }
    this.ws = ws;
    for (const text of this.delivery.reattach(this.session.committedSample)) this.send(text);
  }

  /**
   * An audio frame from the edge at `nowMs`: fed to the engine unless it is a replay, then
   * acknowledged; a frame ahead of the call's pace waits (with every frame after it) until it is
   * due. Returns how to close the socket when the frame is refused (its seq out of the window, or
   * too much audio waiting for its pace): not fed, not acknowledged.
   */
  audio(frame: AudioFrame, nowMs: number): RelayClosing | undefined {
    if (this.ending) return undefined; // stopped: the engine is saying its last, it takes no audio
    if (this.held.length > 0) return this.hold(frame); // in order: behind those waiting
    const r = this.take(frame, nowMs);
    return r === "too_fast" ? this.hold(frame) : r;
  }

  /** Feeds (or not) one frame now; "too_fast": it is ahead of its pace (nothing changed). */
  private take(frame: AudioFrame, nowMs: number): RelayClosing | "too_fast" | undefined {
    const { seq, pcm, startSample } = frame;
    const expected = this.delivery.expectedSeq;
    const verdict = this.delivery.audio(seq, startSample, pcm.length, nowMs);
    switch (verdict) {
      case "out_of_window":
        return relayClosing(
          "seq_out_of_window",
          `block seq ${seq} is more than the relay buffer (${this.deps.relayBufferMs} ms) ahead of the next expected seq ${expected}`,
        );
      case "too_fast":
        return "too_fast";
      case "gap":
        this.deps.logLimited(this.start.callSid, "gap", "audio blocks missing from the edge", { expected, got: seq });
      // falls through: a gap's block is fed
      case "feed": {
        this.clock.record(((startSample + pcm.length) * 1000) / frame.sampleRateHz, Date.now());
        const t0 = performance.now();
        this.session.feed(pcm, startSample);
        this.deps.metrics.observeFeed(performance.now() - t0, this, Date.now());
        break;
      }
      case "duplicate":
        break;
    }
    this.ack();
    return undefined;
  }

  /** Holds `frame` until its pace allows it; past `PACE_HOLD_MS` waiting: refused (the socket closes). */
  private hold(frame: AudioFrame): RelayClosing | undefined {
    const ms = (frame.pcm.length * 1000) / frame.sampleRateHz;
    if (this.heldMs + ms > this.deps.paceHoldMs) {
      this.deps.counters.blocksTooFast += this.held.length + 1;
      this.dropHeld();
      return relayClosing(
        "too_fast",
        `audio keeps coming faster than real time beyond the relay buffer (${this.deps.relayBufferMs} ms) and ` +
          `${this.deps.paceHoldMs} ms of it waited already; reconnect and replay from the last committed block`,
      );
    }
    this.held.push(frame);
    this.heldMs += ms;
    this.deps.counters.blocksPaced++;
    if (this.held.length === 1) this.armHold();
    if (this.heldMs >= this.deps.paceHoldMs / 10 && this.ws && !this.paused) {
      this.paused = this.ws;
      this.ws.pause();
    }
    return undefined;
  }

  /** Wakes the call when the first held frame is due. */
  private armHold(): void {
    const head = this.held[0];
    if (!head || this.holdTimer) return;
    const dueMs = this.delivery.paceDueMs(head.pcm.length) ?? Date.now();
    this.holdTimer = setTimeout(() => this.releaseHeld(), Math.max(0, dueMs - Date.now()));
  }

  /** Feeds the held frames that are due, in order; the rest wait for the next due time. */
  private releaseHeld(): void {
    this.holdTimer = undefined;
    while (this.held.length > 0 && !this.ending) {
      const frame = this.held[0]!;
      const r = this.take(frame, Date.now());
      if (r === "too_fast") {
        this.armHold(); // woken a little early
        return;
      }
      this.held.shift();
      this.heldMs -= (frame.pcm.length * 1000) / frame.sampleRateHz;
      if (r) {
        this.dropHeld();
        this.ws?.send(r.text);
        this.ws?.close(r.code, r.reason);
        return;
      }
      if (this.heldMs <= this.deps.paceHoldMs / 20) this.unpause();
    }
  }

  private dropHeld(): void {
    this.held.length = 0;
    this.heldMs = 0;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.unpause();
  }

  private unpause(): void {
    const ws = this.paused;
    this.paused = undefined;
    if (ws && ws.readyState === ws.OPEN) ws.resume();
  }

  /** Socket `ws` went away: when it is the call's, wait the grace for the edge, then end. */
  detach(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.dropHeld(); // the edge replays what it sent and was not acknowledged
    const dueMs = this.delivery.detached(Date.now());
    if (dueMs !== undefined) this.armExpiry(dueMs);
  }

  /** The runner drains: tell the edge to go elsewhere and close its socket. */
  drain(): void {
    const goaway = this.delivery.drain();
    this.ws?.send(goaway.text);
    this.ws?.close(goaway.code, goaway.reason);
  }

  /** Ends the call: the engine says its last, all audio is committed and acknowledged. */
  async end(reason: string): Promise<void> {
    if (this.ending || !this.delivery.end()) return;
    this.ending = true;
    this.clearExpiry();
    this.dropHeld();
    this.deps.log("info", "call ended", { callSid: this.start.callSid, reason });
    try {
      await this.session.end();
    } catch (e) {
      this.deps.log("error", "engine session failed to end", { callSid: this.start.callSid, error: String(e) });
    }
    // everything the engine will say is said: all audio is committed
    this.send(this.delivery.finalAck());
    this.listener.close?.();
    this.deps.onEnded(this, this.delivery.forget());
  }

  /** The runner closes: drop the call now (its socket is terminated by the server). */
  close(): void {
    this.ending = true;
    this.clearExpiry();
    this.dropHeld();
    this.listener.close?.();
    void this.session.end();
  }

  /** Wakes the call at `dueMs` (wall ms) to end it if the edge has not come back. */
  private armExpiry(dueMs: number): void {
    this.clearExpiry();
    this.expiry = setTimeout(
      () => {
        this.expiry = undefined;
        const now = Date.now();
        if (this.delivery.expired(now)) void this.end("edge did not come back");
        else if (this.delivery.nextDueMs !== undefined) this.armExpiry(this.delivery.nextDueMs); // fired early
      },
      Math.max(0, dueMs - Date.now()),
    );
  }

  /** Acknowledges arrival and commit (the engine's committed sample) to the edge. */
  private ack(): void {
    this.send(this.delivery.ack(this.session.committedSample));
  }

  /** A transcript event to the edge now, or kept for the call's next socket while it has none. */
  private sendEvent(text: string, kind: UndeliveredKind): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(text);
    else this.delivery.keepUndelivered(text, kind);
  }

  /** A relay text frame to the call's current socket, when it is open (acks: the next socket gets a fresh one). */
  private send(text: string): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(text);
  }

  private clearExpiry(): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = undefined;
  }
}
