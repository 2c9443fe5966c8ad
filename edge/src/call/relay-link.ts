/**
 * The Durable Object's one persistent WebSocket to the stt-runner (adapter).
 *
 * Blocks are kept until the runner acknowledges them; on (re)connect the link sends `start`
 * with `resumeFromSeq` = the oldest unacknowledged block and replays every kept block in order,
 * so a runner restart loses nothing the edge accepted. Reconnects back off exponentially.
 * Never throws into the caller: failures are counted and retried.
 */
import { DropOldestQueue, LatencyWindow, encodeControl, parseRunnerToEdge, recordMs } from "@ozen/shared";
import type { MsHistogram, RelayStart, RunnerToEdge } from "@ozen/shared";
import { newRelayLinkStats } from "./stats.js";
import type { RelayLinkStats } from "./stats.js";

export interface PendingBlock {
  readonly seq: number;
  readonly frame: ArrayBuffer;
  /** Date.now() when last sent; 0 when never sent. */
  sentAtMs: number;
}

export interface RelayLinkOptions {
  readonly url: string;
  readonly start: Omit<RelayStart, "v" | "type" | "resumeFromSeq">;
  readonly maxPendingBlocks: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Control messages other than ack/ping/pong (clear, goaway, error). */
  readonly onControl: (m: RunnerToEdge) => void;
  /** A block fell out of the pending buffer before the runner acknowledged it (lost audio). */
  readonly onBlockDropped: (seq: number) => void;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Ends a send's pause for a block frame we no longer need (pool recycling). */
  readonly onAcked?: (block: PendingBlock) => void;
}

type State = "idle" | "connecting" | "open" | "closed";

export class RelayLink {
  private state: State = "idle";
  private ws: WebSocket | undefined;
  private readonly pending: DropOldestQueue<PendingBlock>;
  private backoffMs: number;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopMessage: string | undefined;
  private lastAcked = -1;
  private lastCommitted = -1;
  /** Send time (Date.now) of blocks awaiting their first ack, by seq, in seq order. */
  private readonly sentAt = new Map<number, number>();
  private nextSeq = 0;
  readonly rtt = new LatencyWindow(2048);
  /** Every round trip by whole ms (workerd's clock moves in whole ms anyway). */
  readonly rttHistogram: MsHistogram = {};
  readonly stats: RelayLinkStats = newRelayLinkStats();
  /** Resolves when the call is over and everything is acknowledged (or given up on). */
  private finished: (() => void) | undefined;

  constructor(private readonly o: RelayLinkOptions) {
    this.pending = new DropOldestQueue(o.maxPendingBlocks);
    this.backoffMs = o.backoffMinMs;
  }

  get connected(): boolean {
    return this.state === "open";
  }

  get pendingBlocks(): number {
    return this.pending.length;
  }

  /** Opens the socket (idempotent). */
  connect(): void {
    if (this.state === "connecting" || this.state === "open") return;
    this.state = "connecting";
    void this.open();
  }

  /** Queues block `seq` (kept until acked) and sends it now if the socket is open. */
  send(seq: number, frame: ArrayBuffer): void {
    const block: PendingBlock = { seq, frame, sentAtMs: 0 };
    this.nextSeq = seq + 1;
    const lost = this.pending.push(block);
    if (lost) {
      this.stats.blocksDropped++;
      this.o.onBlockDropped(lost.seq);
    }
    if (this.state === "open" && this.ws) {
      block.sentAtMs = Date.now();
      this.sentAt.set(seq, block.sentAtMs);
      this.ws.send(frame);
      this.stats.blocksSent++;
    }
  }

  /**
   * The call is over: tell the runner, then close once every block is acknowledged. Resolves
   * with the blocks still unacknowledged when it gave up after `graceMs` (0 when none were lost).
   */
  stop(reason: string, graceMs: number): Promise<number> {
    this.stopMessage = encodeControl({ type: "stop", reason, lastSeq: this.nextSeq - 1 });
    const done = new Promise<number>((resolve) => {
      const timer = setTimeout(() => {
        const lost = this.pending.length;
        if (lost > 0)
          this.o.log("error", "runner did not acknowledge the end of the call; audio lost", { lostBlocks: lost });
        this.close(1001, "gave up");
      }, graceMs);
      this.finished = () => {
        clearTimeout(timer);
        resolve(this.pending.length);
      };
    });
    if (this.state === "open" && this.ws) {
      this.ws.send(this.stopMessage);
      this.maybeFinish();
    } else {
      this.connect();
    }
    return done;
  }

  /** Closes at once (the DO is going away or gave up). */
  close(code = 1000, reason = "call ended"): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.state = "closed";
    try {
      this.ws?.close(code, reason);
    } catch {
      // already closed
    }
    this.ws = undefined;
    this.finished?.();
  }

  private async open(): Promise<void> {
    let ws: WebSocket | null | undefined;
    try {
      const url = this.o.url.replace(/^ws/, "http");
      // the call's sid on the upgrade: for the runner's logs and load balancer, before any frame
      const resp = await fetch(url, { headers: { Upgrade: "websocket", "X-Ozen-Call": this.o.start.callSid } });
      ws = resp.webSocket;
      if (!ws) throw new Error(`runner answered HTTP ${resp.status}, not a WebSocket upgrade`);
    } catch (e) {
      if (this.state !== "connecting") return; // closed meanwhile
      this.stats.connectFailures++;
      this.o.log(this.stats.connectFailures === 1 ? "warn" : "info", "runner unreachable; will retry", {
        error: String(e),
        retryInMs: this.backoffMs,
        pendingBlocks: this.pending.length,
      });
      this.scheduleRetry();
      return;
    }
    if (this.state !== "connecting") {
      ws.accept();
      ws.close(1000, "link closed");
      return;
    }
    ws.accept();
    this.ws = ws;
    this.state = "open";
    this.stats.connects++;
    ws.addEventListener("message", (ev) => this.onMessage(ev.data));
    ws.addEventListener("close", () => this.onDown(ws));
    ws.addEventListener("error", () => this.onDown(ws));

    const oldest = this.pending.peek();
    ws.send(encodeControl({ type: "start", ...this.o.start, resumeFromSeq: oldest ? oldest.seq : this.nextSeq }));
    const now = Date.now();
    for (const block of this.pending) {
      if (block.sentAtMs !== 0) this.stats.blocksReplayed++;
      block.sentAtMs = now;
      if (block.seq > this.lastAcked) this.sentAt.set(block.seq, now);
      ws.send(block.frame);
      this.stats.blocksSent++;
    }
    if (this.stopMessage) {
      ws.send(this.stopMessage);
      this.maybeFinish();
    }
  }

  private onDown(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    answerCloseFrame(ws);
    if (this.state === "closed") return;
    this.stats.disconnects++;
    this.o.log("warn", "runner socket closed; reconnecting", { pendingBlocks: this.pending.length });
    this.state = "connecting";
    // no backoff reset here: a runner that accepts and at once closes (draining, 1013) would be
    // redialled at the minimum forever; acks on a working link reset it (onAck)
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.backoffMaxMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === "connecting") void this.open();
    }, delay);
  }

  private onMessage(data: unknown): void {
    if (typeof data !== "string") {
      this.stats.protocolErrors++;
      this.o.log("warn", "runner sent a binary frame; ignored");
      return;
    }
    const r = parseRunnerToEdge(data);
    if (!r.ok) {
      this.stats.protocolErrors++;
      this.o.log("warn", "runner message rejected", { error: r.message });
      return;
    }
    const m = r.message;
    switch (m.type) {
      case "ack":
        this.onAck(m.seq, Math.min(m.seq, m.committedSeq ?? m.seq));
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

  private onAck(seq: number, committedSeq: number): void {
    const now = Date.now();
    if (seq > this.lastAcked) {
      this.lastAcked = seq;
      this.backoffMs = this.o.backoffMinMs; // a working link resets the backoff
      const block = this.sentAt.get(seq);
      if (block !== undefined) {
        this.rtt.record(now - block);
        recordMs(this.rttHistogram, now - block);
      }
      for (const k of this.sentAt.keys()) if (k <= seq) this.sentAt.delete(k);
    }
    while (this.pending.length > 0 && this.pending.peek()!.seq <= committedSeq) {
      const done = this.pending.shift()!;
      this.stats.blocksAcked++;
      this.o.onAcked?.(done);
    }
    this.lastCommitted = Math.max(this.lastCommitted, committedSeq);
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.stopMessage && this.pending.length === 0 && this.lastCommitted >= this.nextSeq - 1) this.close();
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
