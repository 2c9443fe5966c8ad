/**
 * The Durable Object's one persistent WebSocket to the stt-runner (adapter): socket wiring
 * around the delivery protocol's edge side, `RelaySender` (shared/src/relay/sender.ts), which
 * keeps blocks until the runner commits them, resumes and replays on every (re)connect, backs
 * off, and ends the call with a stop handshake. This class owns the socket, the one timer and
 * the clock. Never throws into the caller: failures are counted and retried.
 */
import { RelaySender, encodeControl, parseRunnerToEdge } from "@ozen/shared";
import type { MsHistogram, PendingBlock, RelayStart, RunnerToEdge } from "@ozen/shared";
import type { LatencyWindow } from "@ozen/shared";
import type { RelayLinkStats } from "./stats.js";

export type { PendingBlock } from "@ozen/shared";

export interface RelayLinkOptions {
  readonly url: string;
  readonly start: Omit<RelayStart, "v" | "type" | "resumeFromSeq">;
  readonly maxPendingBlocks: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Control messages other than ack/ping/pong (clear, goaway, error, and typed events). */
  readonly onControl: (m: RunnerToEdge) => void;
  /** A block fell out of the pending buffer before the runner acknowledged it (lost audio). */
  readonly onBlockDropped: (seq: number) => void;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Ends a send's pause for a block frame we no longer need (pool recycling). */
  readonly onAcked?: (block: PendingBlock) => void;
  /** The runner sent an event that is not a valid transcript event (dropped); `error` says why. */
  readonly onInvalidEvent?: (error: string) => void;
  /** Headers the upgrade adds (credentials); a rejection fails the dial, which is retried with backoff. */
  readonly upgradeHeaders?: () => Promise<Record<string, string>>;
}

export class RelayLink {
  private readonly sender: RelaySender;
  private ws: WebSocket | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The wall time the timer is set for, ms. */
  private timerDueMs: number | undefined;
  /** Resolves `stop` with the blocks never committed (on close). */
  private finished: ((lostBlocks: number) => void) | undefined;

  constructor(private readonly o: RelayLinkOptions) {
    this.sender = new RelaySender({
      start: o.start,
      maxPendingBlocks: o.maxPendingBlocks,
      backoffMinMs: o.backoffMinMs,
      backoffMaxMs: o.backoffMaxMs,
    });
  }

  get connected(): boolean {
    return this.sender.open;
  }

  get pendingBlocks(): number {
    return this.sender.pendingBlocks;
  }

  get stats(): RelayLinkStats {
    return this.sender.stats;
  }

  get rtt(): LatencyWindow {
    return this.sender.rtt;
  }

  /** Every round trip by whole ms (workerd's clock moves in whole ms anyway). */
  get rttHistogram(): MsHistogram {
    return this.sender.rttHistogram;
  }

  /** Opens the socket (idempotent). */
  connect(): void {
    if (this.sender.connect()) void this.dial();
  }

  /** Queues block `seq` (kept until acked) and sends it now if the socket is open. */
  send(seq: number, frame: ArrayBuffer): void {
    const lost = this.sender.push(seq, frame, Date.now());
    if (lost) this.o.onBlockDropped(lost.seq);
    if (this.sender.open) this.ws?.send(frame);
  }

  /**
   * The call is over: tell the runner, then close once every block is acknowledged. Resolves
   * with the blocks still unacknowledged when it gave up after `graceMs` (0 when none were lost).
   */
  stop(reason: string, graceMs: number): Promise<number> {
    const done = new Promise<number>((resolve) => (this.finished = resolve));
    if (this.sender.state === "closed") {
      this.close();
      return done;
    }
    const stopText = this.sender.stop(reason, graceMs, Date.now());
    if (stopText !== undefined) {
      this.ws?.send(stopText);
      this.closeIfFinished();
    } else {
      this.connect();
    }
    this.schedule();
    return done;
  }

  /** Closes at once (the DO is going away or gave up). */
  close(code = 1000, reason = "call ended"): void {
    this.sender.close();
    this.schedule();
    try {
      this.ws?.close(code, reason);
    } catch {
      // already closed
    }
    this.ws = undefined;
    const finished = this.finished;
    this.finished = undefined;
    finished?.(this.sender.pendingBlocks);
  }

  private async dial(): Promise<void> {
    let ws: WebSocket | null | undefined;
    try {
      const url = this.o.url.replace(/^ws/, "http");
      // the call's sid on the upgrade: for the runner's logs and load balancer, before any frame
      const extra = await this.o.upgradeHeaders?.();
      const resp = await fetch(url, {
        headers: { ...extra, Upgrade: "websocket", "X-Ozen-Call": this.o.start.callSid },
      });
      ws = resp.webSocket;
      if (!ws) throw new Error(`runner answered HTTP ${resp.status}, not a WebSocket upgrade`);
    } catch (e) {
      const now = Date.now();
      const dueMs = this.sender.dialFailed(now);
      if (dueMs === undefined) return; // closed meanwhile
      this.o.log(this.stats.connectFailures === 1 ? "warn" : "info", "runner unreachable; will retry", {
        error: String(e),
        retryInMs: dueMs - now,
        pendingBlocks: this.sender.pendingBlocks,
      });
      this.schedule();
      return;
    }
    ws.accept();
    const opening = this.sender.opened(Date.now());
    if (!opening) {
      ws.close(1000, "link closed");
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (ev) => this.onMessage(ev.data));
    ws.addEventListener("close", () => this.onDown(ws));
    ws.addEventListener("error", () => this.onDown(ws));
    ws.send(opening.start);
    for (const block of opening.blocks) ws.send(block.frame);
    if (opening.stop !== undefined) {
      ws.send(opening.stop);
      this.closeIfFinished();
    }
    this.schedule();
  }

  private onDown(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    answerCloseFrame(ws);
    const dueMs = this.sender.socketLost(Date.now());
    if (dueMs === undefined) return; // the link closed
    this.o.log("warn", "runner socket closed; reconnecting", { pendingBlocks: this.sender.pendingBlocks });
    this.schedule();
  }

  /** Keeps the one timer on the sender's next due time. */
  private schedule(): void {
    const dueMs = this.sender.nextDueMs;
    if (dueMs === this.timerDueMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDueMs = dueMs;
    if (dueMs === undefined) return;
    this.timer = setTimeout(() => this.onDue(), Math.max(0, dueMs - Date.now()));
  }

  private onDue(): void {
    this.timer = undefined;
    this.timerDueMs = undefined;
    switch (this.sender.tick(Date.now())) {
      case "dial":
        void this.dial();
        break;
      case "give_up": {
        const lost = this.sender.pendingBlocks;
        if (lost > 0)
          this.o.log("error", "runner did not acknowledge the end of the call; audio lost", { lostBlocks: lost });
        this.close(1001, "gave up");
        break;
      }
      case undefined:
        break;
    }
    this.schedule();
  }

  private onMessage(data: unknown): void {
    if (typeof data !== "string") {
      this.sender.rejected();
      this.o.log("warn", "runner sent a binary frame; ignored");
      return;
    }
    const r = parseRunnerToEdge(data);
    if (!r.ok) {
      if (r.invalidEvent && this.o.onInvalidEvent) {
        this.o.onInvalidEvent(r.message);
        return;
      }
      this.sender.rejected();
      this.o.log("warn", "runner message rejected", { error: r.message });
      return;
    }
    const m = r.message;
    switch (m.type) {
      case "ack":
        this.sender.ack(m.seq, m.committedSeq, Date.now(), this.o.onAcked);
        this.closeIfFinished();
        break;
      case "ping":
        this.ws?.send(encodeControl({ type: "pong", id: m.id }));
        break;
      case "pong":
        break;
      default:
        this.o.onControl(m);
    }
  }

  private closeIfFinished(): void {
    if (this.sender.finished) this.close();
  }
}

/**
 * Answers the runner's close frame: before compatibility date 2026-04-07 workerd does not, and the
 * runner would hold the half-closed socket for its 30 s close timeout (a drain waits on it).
 *
 * Not from inside the close event: workerd sends queued frames with a pump, and when the pump
 * that sent our last frame has finished but its continuation has not run yet, a close() in the
 * close event starts a second pump; that continuation then sees the socket closed both ways and
 * releases it, cancelling the second pump before the close frame is written (the runner sees the
 * TCP connection end, 1006). The same holds for workerd's own reply after that date. One timer
 * turn later the first pump's continuation has run (with the socket still open outgoing), so the
 * close goes out whole.
 */
function answerCloseFrame(ws: WebSocket): void {
  setTimeout(() => {
    try {
      ws.close(1000, "closed by the runner");
    } catch {
      // already closed (error, or workerd answered it)
    }
  }, 0);
}
