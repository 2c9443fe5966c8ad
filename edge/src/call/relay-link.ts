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
 *
 * Affinity (`affinity`): the cookies the front end sets on an upgrade's response are kept for the
 * call and sent on its reconnects (`AffinityJar`), so a reconnect lands on the instance holding
 * the call's session. Capacity: a runner with no room closes 4007 (the front end may answer the
 * upgrade 429/503 itself, and a draining runner answers 503); the link redials with backoff,
 * keeping the audio, and `RunnerWait`
 * says when to tell the agent no runner takes the call, and when one did (`onRunnerWait`).
 */
import {
  AffinityJar,
  RELAY_CREDENTIAL_HEADER,
  RelaySender,
  RunnerWait,
  encodeControl,
  parseRunnerToEdge,
  signRelayCredential,
} from "@ozen/shared";
import type { MsHistogram, PendingBlock, RelayStart, RunnerToEdge, RunnerWaitNotice } from "@ozen/shared";
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
  /** Keep the front end's cookies from the upgrade's response and send them on reconnects. */
  readonly affinity?: boolean;
  /** How long the call may go unadmitted for capacity before `onRunnerWait` says so, ms (default 3000). */
  readonly capacityNoticeMs?: number;
  /** No runner took the call within `capacityNoticeMs`, or one took it after that. */
  readonly onRunnerWait?: (notice: RunnerWaitNotice) => void;
}

export class RelayLink {
  private readonly sender: RelaySender;
  private ws: WebSocket | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The wall time the timer is set for, ms. */
  private timerDueMs: number | undefined;
  /** Resolves `stop` with the blocks never committed (on close). */
  private finished: ((lostBlocks: number) => void) | undefined;
  /** The front end's affinity cookies for this call. */
  readonly affinity = new AffinityJar();
  /** Waiting for a runner with room (capacity refusals). */
  readonly wait: RunnerWait;
  /** The current socket has been acknowledged on: a runner took the call on it. */
  private admittedOnSocket = false;
  /**
   * The socket of a runner that said `goaway` (it drains): no longer used, its messages ignored
   * (the call's audio since the last commit is replayed to the next runner), but held open until
   * a runner acknowledges the call on a new socket, so the draining instance exits only after
   * its calls moved.
   */
  private leaving: WebSocket | undefined;
  /** Sockets of runners that said `goaway`: what they say after it is not used. */
  private readonly left = new WeakSet<WebSocket>();

  constructor(private readonly o: RelayLinkOptions) {
    this.sender = new RelaySender({
      start: o.start,
      maxPendingBlocks: o.maxPendingBlocks,
      backoffMinMs: o.backoffMinMs,
      backoffMaxMs: o.backoffMaxMs,
      ...(o.firstSeq !== undefined ? { firstSeq: o.firstSeq } : {}),
    });
    this.wait = new RunnerWait({ noticeAfterMs: o.capacityNoticeMs ?? 3000 });
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
    this.closeLeaving();
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
      // the instance the front end chose for this call last time, so a reconnect lands there again
      const cookie = this.o.affinity ? this.affinity.header() : undefined;
      if (cookie !== undefined) headers["Cookie"] = cookie;
      // a fresh credential per dial: it opens this call only, once, for about a minute
      if (this.o.relaySecret) {
        headers[RELAY_CREDENTIAL_HEADER] = await signRelayCredential(
          this.o.relaySecret,
          this.o.start.callSid,
          Date.now(),
        );
      }
      const resp = await fetch(url, { headers });
      if (this.o.affinity) this.affinity.take(setCookieLines(resp.headers), Date.now());
      ws = resp.webSocket;
      if (!ws && (resp.status === 429 || resp.status === 503)) {
        // the front end has no instance with room (or none ready): a capacity wait, like a 4007
        this.wait.refused(Date.now());
        throw new Error(`runner front end answered HTTP ${resp.status}: no instance has room for the call`);
      }
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
    this.admittedOnSocket = false;
    ws.addEventListener("message", (ev) => this.onMessage(ws, ev.data));
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
    if (ws === this.leaving) {
      this.leaving = undefined;
      answerCloseFrame(ws);
      return;
    }
    if (this.ws !== ws) return;
    this.ws = undefined;
    answerCloseFrame(ws);
    const dueMs = this.sender.socketLost(Date.now());
    if (dueMs === undefined) return; // the link closed
    this.o.log("warn", "runner socket closed; reconnecting", { pendingBlocks: this.sender.pendingBlocks });
    this.schedule();
  }

  /** Keeps the one timer on the next due time: the sender's, or the capacity notice's. */
  private schedule(): void {
    const senderDueMs = this.sender.nextDueMs;
    const waitDueMs = this.sender.state === "closed" ? undefined : this.wait.nextDueMs;
    const dueMs =
      senderDueMs === undefined ? waitDueMs : waitDueMs === undefined ? senderDueMs : Math.min(senderDueMs, waitDueMs);
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
    const notice = this.wait.tick(Date.now());
    if (notice) {
      this.o.log("warn", "no runner has room for the call; its audio is kept and the link keeps trying", {
        refusals: this.wait.refusals,
        pendingBlocks: this.sender.pendingBlocks,
      });
      this.o.onRunnerWait?.(notice);
    }
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

  /**
   * The runner on `ws` drains (`goaway`): the link redials through the front end (which routes
   * to a live instance) and replays what is not committed; `ws` is held open, unused, until a
   * runner acknowledges the call on the new socket (make before break).
   */
  private leave(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.left.add(ws);
    if (this.leaving === undefined) {
      this.leaving = ws;
    } else {
      // a second draining socket (the redial reached an instance that began to drain too; one
      // draining already answers a redial's upgrade 503): the first one is held; this one is
      // answered and let go
      answerCloseFrame(ws);
    }
    if (this.sender.socketLost(Date.now()) === undefined) this.closeLeaving();
    this.schedule();
  }

  private closeLeaving(): void {
    const ws = this.leaving;
    this.leaving = undefined;
    try {
      ws?.close(1000, "moved to another instance");
    } catch {
      // already closed
    }
  }

  private onMessage(ws: WebSocket, data: unknown): void {
    // a draining runner's socket, held until the call moved: what it says is said again by the
    // next (a socket the link closed itself still delivers what was in flight: the call's end)
    if (this.left.has(ws)) return;
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
      case "ack": {
        if (!this.admittedOnSocket) {
          // the first ack on a socket: a runner took the call (a capacity wait, if any, is over)
          this.admittedOnSocket = true;
          const notice = this.wait.admitted(Date.now());
          if (notice) this.o.onRunnerWait?.(notice);
          this.closeLeaving(); // the call moved: the draining runner may let it go
          this.schedule();
        }
        this.sender.ack(m.seq, m.committedSeq, Date.now(), this.o.onAcked);
        this.closeIfFinished();
        break;
      }
      case "goaway":
        this.leave(ws);
        this.o.onControl(m);
        break;
      case "error":
        if (m.code === "at_capacity") this.wait.refused(Date.now());
        this.o.onControl(m);
        this.schedule();
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

/** The Set-Cookie lines of a response (one per cookie; `get` would join them with commas). */
function setCookieLines(headers: Headers): string[] {
  const h = headers as Headers & { getSetCookie?: () => string[]; getAll?: (name: string) => string[] };
  if (typeof h.getSetCookie === "function") return h.getSetCookie();
  if (typeof h.getAll === "function") return h.getAll("set-cookie");
  const one = headers.get("set-cookie");
  return one === null ? [] : [one];
}
