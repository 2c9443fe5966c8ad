/**
 * The Durable Object's one persistent WebSocket to the stt-runner (adapter): socket wiring
 * around the delivery protocol's edge side, `RelaySender` (shared/src/relay/sender.ts), which
 * keeps blocks until the runner commits them, resumes and replays on every (re)connect, backs
 * off, and ends the call with a stop handshake. This class owns the socket, the one timer and
 * the clock. Never throws into the caller: failures are counted and retried.
 *
 * Each dial carries a fresh relay credential for the call (`X-Ozen-Relay-Credential`, signed
 * with RELAY_SECRET: shared/src/relay/credential.ts), so the runner takes the socket for this
 * call and no other; a runner that refuses it answers the upgrade 401 (retried with backoff).
 */
import {
  RELAY_CREDENTIAL_HEADER,
  RelaySender,
  encodeControl,
  parseRunnerToEdge,
  signRelayCredential,
} from "@ozen/shared";
import type { MsHistogram, PendingBlock, RelayStart, RunnerToEdge } from "@ozen/shared";
import type { LatencyWindow } from "@ozen/shared";
import type { RelayLinkStats } from "./stats.js";

export type { PendingBlock } from "@ozen/shared";

export interface RelayLinkOptions {
  readonly url: string;
  /** RELAY_SECRET: each dial signs a credential for the call with it; empty: none is sent. */
  readonly relaySecret: string;
  readonly start: Omit<RelayStart, "v" | "type" | "resumeFromSeq">;
  /** The seq blocks go on from (default 0; the close-out after an edge restart goes on from what it persisted). */
  readonly firstSeq?: number;
  /**
   * Close the link once the stop went out and every block is committed (default true). The
   * close-out holds it open instead: it waits for what the runner still has to say.
   */
  readonly closeWhenFinished?: boolean;
  readonly maxPendingBlocks: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Control messages other than ack/ping/pong (clear, goaway, error, and typed events). */
  readonly onControl: (m: RunnerToEdge) => void;
  /** A block fell out of the full pending buffer before it was ever sent (lost audio). */
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
      ...(o.firstSeq !== undefined ? { firstSeq: o.firstSeq } : {}),
    });
  }

  /** Blocks sent to the runner and not yet committed (a gauge). */
  get unacknowledgedBlocks(): number {
    return this.sender.unacknowledgedBlocks;
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
    if (lost && lost.sentAtMs === 0) this.o.onBlockDropped(lost.seq);
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
      // the front end's identity (RUNNER_AUTH) first; the relay's own headers are not overridden
      const extra = await this.o.upgradeHeaders?.();
      const headers: Record<string, string> = {
        ...extra,
        Upgrade: "websocket",
        "X-Ozen-Call": this.o.start.callSid,
      };
      // a fresh credential per dial: it opens this call only, once, for about a minute
      if (this.o.relaySecret) {
        headers[RELAY_CREDENTIAL_HEADER] = await signRelayCredential(
          this.o.relaySecret,
          this.o.start.callSid,
          Date.now(),
        );
      }
      const resp = await fetch(url, { headers });
      ws = resp.webSocket;
      if (!ws && resp.status === 401) {
        const said = (await resp.text()).trim().slice(0, 160);
        throw new Error(
          this.o.relaySecret
            ? `runner refused the relay credential (HTTP 401: ${said}); RELAY_SECRET must be the same on the edge and the runner`
            : `runner refused the relay (HTTP 401: ${said}): RELAY_SECRET is not set at the edge; set the runner's there`,
        );
      }
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
    if (this.sender.finished && this.o.closeWhenFinished !== false) this.close();
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
