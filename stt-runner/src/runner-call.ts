/**
 * One call at the runner (adapter): its engine session, the listener that turns results into
 * events, and the socket the edge reaches it on now. The delivery rules (de-duplication by seq,
 * gaps, the commit point, the acks, the grace of a detached call, goaway on drain) are
 * `RelayReceiver`'s (shared/src/relay/receiver.ts); this class owns the socket, the timer and
 * the clock around it.
 */
import { RelayReceiver } from "@ozen/shared";
import type { AudioFrame, RelayReceiverCounters, RelayStart } from "@ozen/shared";
import type { WebSocket } from "ws";
import type { Engine, EngineListener, EngineSession } from "./engines/engine.js";
import type { Metrics } from "./metrics.js";
import { ArrivalClock } from "./transcripts.js";

export type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** An engine listener the runner closes when the call ends (the transcript policy's `call.ended`). */
export type CallListener = EngineListener & { close?(): void };

/**
 * Makes the engine listener of a call (the transcript policy and event delivery go here); gets
 * a `send` for relay text frames to the call's current socket.
 */
export type ListenerFactory = (start: RelayStart, send: (text: string) => void, clock: ArrivalClock) => CallListener;

export interface RunnerCallDeps {
  readonly engine: Engine;
  readonly listenerFor: ListenerFactory | undefined;
  readonly counters: RelayReceiverCounters;
  readonly metrics: Metrics;
  readonly log: Log;
  /** How long the call waits for the edge after its socket went away, ms. */
  readonly resumeGraceMs: number;
  /** The call is over and its session closed: forget it. */
  readonly onEnded: (call: RunnerCall) => void;
}

const NOOP_LISTENER: EngineListener = { interim() {}, final() {}, failed() {} };

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

  /** A new call from `start`, on socket `ws`. */
  constructor(
    start: RelayStart,
    ws: WebSocket,
    private readonly deps: RunnerCallDeps,
  ) {
    this.start = start;
    this.ws = ws;
    this.delivery = new RelayReceiver(start, deps.counters, { resumeGraceMs: deps.resumeGraceMs });
    const listener = deps.listenerFor?.(start, (text) => this.send(text), this.clock) ?? NOOP_LISTENER;
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

  /** The edge is back on socket `ws` (a `start` for this call); an older socket is closed. */
  resume(ws: WebSocket): void {
    this.clearExpiry();
    if (this.ws && this.ws !== ws) this.ws.close(1000, "replaced by a newer socket");
    this.ws = ws;
    // blocks the engine already has are acknowledged again, so the edge can forget them
    const ack = this.delivery.resume(this.session.committedSample);
    if (ack !== undefined) this.send(ack);
  }

  /** An audio frame from the edge: fed to the engine unless it is a replay; acknowledged. */
  audio(frame: AudioFrame): void {
    const { seq, pcm, startSample } = frame;
    const expected = this.delivery.expectedSeq;
    const verdict = this.delivery.audio(seq, startSample, pcm.length);
    if (verdict !== "duplicate") {
      if (verdict === "gap") {
        this.deps.log("warn", "audio blocks missing from the edge", {
          callSid: this.start.callSid,
          expected,
          got: seq,
        });
      }
      this.clock.record(((startSample + pcm.length) * 1000) / frame.sampleRateHz, Date.now());
      const t0 = performance.now();
      this.session.feed(pcm, startSample);
      this.deps.metrics.observeFeed(performance.now() - t0, this, Date.now());
    }
    this.ack();
  }

  /** Socket `ws` went away: when it is the call's, wait the grace for the edge, then end. */
  detach(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
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
    this.deps.log("info", "call ended", { callSid: this.start.callSid, reason });
    await this.session.end();
    // everything the engine will say is said: all audio is committed
    this.send(this.delivery.finalAck());
    this.listener.close?.();
    this.deps.onEnded(this);
  }

  /** The runner closes: drop the call now (its socket is terminated by the server). */
  close(): void {
    this.ending = true;
    this.clearExpiry();
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

  /** A relay text frame to the call's current socket, when it is open. */
  private send(text: string): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(text);
  }

  private clearExpiry(): void {
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = undefined;
  }
}
