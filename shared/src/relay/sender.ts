/**
 * The edge's side of the relay's delivery protocol, sans-IO (h11/wsproto style): a state machine
 * fed the link's events and `nowMs`, returning what to send and when it next wants to be woken.
 * It never touches a socket, a timer or a clock; the adapter (edge `RelayLink`) owns those.
 *
 * The protocol, edge side:
 * - every block pushed is kept until the runner commits it (`ack.committedSeq`): its words are
 *   in finals, or the engine keeps nothing of it. Blocks past `maxPendingBlocks` drop the oldest
 *   (counted: `blocksDropped` when it was never sent, lost audio; `blocksEvicted` when the runner
 *   had it but a replay no longer can);
 * - on every (re)connect the link sends `start` with `resumeFromSeq` = the oldest block kept (the
 *   next seq when none is), replays every kept block in order, then `stop` when the call is over;
 *   the runner de-duplicates by seq, so nothing it has is fed twice and nothing kept is lost;
 * - a dial that fails, or a socket that goes down, redials at a due time that backs off from
 *   `backoffMinMs`, doubling to `backoffMaxMs`; an ack of a new block (a working link) resets it.
 *   A runner that refuses the upgrade (HTTP 401, or 503 while it drains) is a failed dial; one that
 *   accepts and at once closes (at capacity, 4007) is not reset by that either: it backs off;
 * - `stop`: the call is over. Once every block is committed the link is done (close 1000); at the
 *   stop's grace the sender gives up and reports how many blocks were never committed;
 * - the round trip of a block is timed from its last send to the first ack that covers it.
 */
import { LatencyWindow, recordMs } from "../metrics/latency.js";
import type { MsHistogram } from "../metrics/latency.js";
import { DropOldestQueue } from "../metrics/queue.js";
import { encodeControl } from "./wire.js";
import type { RelayStart } from "./wire.js";

/** A block the edge keeps until the runner commits it. */
export interface PendingBlock {
  readonly seq: number;
  /** The whole audio frame as it goes on the wire (`writeAudioHeader` + PCM). */
  readonly frame: ArrayBuffer;
  /** Wall time of its last send, ms; 0 when never sent. */
  sentAtMs: number;
}

/** The link's counters, as `GET /calls/{CallSid}/stats` shows them under `relay`. */
export interface RelaySenderCounters {
  /** Sockets opened to the runner. */
  connects: number;
  /** Dials that did not end in an open socket (unreachable, or no upgrade). */
  connectFailures: number;
  /** Open sockets that went down before the link closed. */
  disconnects: number;
  /** Block frames handed to a socket: first sends and replays. */
  blocksSent: number;
  /** Block frames sent again on a later socket (they had been sent before). */
  blocksReplayed: number;
  /** Blocks the runner committed: released for reuse. */
  blocksAcked: number;
  /** Blocks that fell out of the full pending buffer before they were ever sent: lost audio. */
  blocksDropped: number;
  /**
   * Blocks that fell out of the full pending buffer after they were sent, before the runner
   * committed them: the runner has them, but a reconnect can no longer replay them.
   */
  blocksEvicted: number;
  /** Runner messages that could not be used (binary, unparseable, unexpected). */
  protocolErrors: number;
}

export function newRelaySenderCounters(): RelaySenderCounters {
  return {
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    blocksSent: 0,
    blocksReplayed: 0,
    blocksAcked: 0,
    blocksDropped: 0,
    blocksEvicted: 0,
    protocolErrors: 0,
  };
}

export interface RelaySenderOptions {
  /** The call's `start`, minus what the sender sets (`resumeFromSeq`). */
  readonly start: Omit<RelayStart, "v" | "type" | "resumeFromSeq">;
  /** Blocks kept at most while the runner has not committed them. */
  readonly maxPendingBlocks: number;
  /** First redial delay, ms; it doubles per failed dial or lost socket. */
  readonly backoffMinMs: number;
  /** Largest redial delay, ms. */
  readonly backoffMaxMs: number;
  /**
   * The seq the call's blocks go on from (default 0): a link opened again for a call whose
   * earlier blocks went with an earlier object (the close-out after an edge restart).
   */
  readonly firstSeq?: number;
}

/**
 * - `idle`: not dialled yet; `connecting`: a dial is under way or due; `open`: a socket is up
 *   and blocks go out as they come; `closed`: done or given up, for good.
 */
export type RelayLinkState = "idle" | "connecting" | "open" | "closed";

/** What to send on a socket that just opened, in this order. */
export interface RelayOpening {
  /** The `start` text frame, `resumeFromSeq` set. */
  readonly start: string;
  /** Every block kept, oldest first (replays, and blocks never sent). */
  readonly blocks: readonly PendingBlock[];
  /** The `stop` text frame, when the call is already over. */
  readonly stop: string | undefined;
}

/** What a due time asks of the adapter: dial now, or give up the stop (close 1001). */
export type RelaySenderWake = "dial" | "give_up";

export class RelaySender {
  readonly stats: RelaySenderCounters = newRelaySenderCounters();
  /** Round trips, ms: a block's last send to the first ack covering it. */
  readonly rtt = new LatencyWindow(2048);
  /** Every round trip by whole ms. */
  readonly rttHistogram: MsHistogram = {};
  private linkState: RelayLinkState = "idle";
  private readonly pending: DropOldestQueue<PendingBlock>;
  private backoffMs: number;
  /** Wall time the next dial is due, ms, while connecting and waiting. */
  private dialDueMs: number | undefined;
  /** Wall time the stop gives up, ms. */
  private stopDeadlineMs: number | undefined;
  private stopText: string | undefined;
  private stopSent = false;
  private nextSeq: number;
  private lastAcked: number;
  private lastCommitted: number;
  /** Kept blocks never sent yet (pushed while no socket was open). */
  private unsent = 0;

  constructor(private readonly o: RelaySenderOptions) {
    this.pending = new DropOldestQueue(o.maxPendingBlocks);
    this.backoffMs = o.backoffMinMs;
    this.nextSeq = o.firstSeq ?? 0;
    this.lastAcked = this.lastCommitted = this.nextSeq - 1;
  }

  get state(): RelayLinkState {
    return this.linkState;
  }

  /** A socket is up: pushed blocks go out at once. */
  get open(): boolean {
    return this.linkState === "open";
  }

  /** Blocks kept, not yet committed by the runner. */
  get pendingBlocks(): number {
    return this.pending.length;
  }

  /** Blocks sent and not yet committed by the runner (a gauge). */
  get unacknowledgedBlocks(): number {
    return this.pending.length - this.unsent;
  }

  /** The stop went out and the runner committed every block: close the link (1000). */
  get finished(): boolean {
    return this.stopSent && this.pending.length === 0 && this.lastCommitted >= this.nextSeq - 1;
  }

  /** Wall time, ms, at which `tick` has something to do; undefined when nothing is due. */
  get nextDueMs(): number | undefined {
    if (this.linkState === "closed") return undefined;
    const dial = this.linkState === "connecting" ? this.dialDueMs : undefined;
    if (dial === undefined) return this.stopDeadlineMs;
    return this.stopDeadlineMs === undefined ? dial : Math.min(dial, this.stopDeadlineMs);
  }

  /** Starts the link. True: dial now (it was idle); false: dialling, open or closed already. */
  connect(): boolean {
    if (this.linkState !== "idle") return false;
    this.linkState = "connecting";
    return true;
  }

  /**
   * The dial did not give an open socket. Returns the wall time of the next dial, ms (the
   * backoff doubles), or undefined when the link was closed meanwhile.
   */
  dialFailed(nowMs: number): number | undefined {
    if (this.linkState !== "connecting") return undefined;
    this.stats.connectFailures++;
    return this.redialAt(nowMs);
  }

  /**
   * A socket opened. Returns what to send on it (start, every kept block, the stop), or
   * undefined when the link was closed meanwhile: close that socket.
   */
  opened(nowMs: number): RelayOpening | undefined {
    if (this.linkState !== "connecting") return undefined;
    this.linkState = "open";
    this.dialDueMs = undefined;
    this.stats.connects++;
    const oldest = this.pending.peek();
    const start = encodeControl({ type: "start", ...this.o.start, resumeFromSeq: oldest ? oldest.seq : this.nextSeq });
    const blocks = Array.from(this.pending);
    for (const block of blocks) {
      if (block.sentAtMs !== 0) this.stats.blocksReplayed++;
      block.sentAtMs = nowMs;
      this.stats.blocksSent++;
    }
    this.unsent = 0;
    if (this.stopText !== undefined) this.stopSent = true;
    return { start, blocks, stop: this.stopText };
  }

  /**
   * The open socket went down. Returns the wall time of the redial, ms, or undefined when the
   * link is closed (or was not open). No backoff reset here: a runner that accepts and at once
   * closes would otherwise be redialled at the minimum forever; acks on a working link reset it.
   */
  socketLost(nowMs: number): number | undefined {
    if (this.linkState !== "open") return undefined;
    this.stats.disconnects++;
    this.linkState = "connecting";
    return this.redialAt(nowMs);
  }

  /**
   * Keeps block `seq` (its `frame` as sent on the wire) until the runner commits it. When the
   * link is `open` afterwards, the caller sends `frame` now (it is counted as sent at `nowMs`).
   * Returns the block that fell out of the full buffer, if any: never sent (`sentAtMs` 0: lost
   * audio, `blocksDropped`) or sent and not committed (`blocksEvicted`).
   */
  push(seq: number, frame: ArrayBuffer, nowMs: number): PendingBlock | undefined {
    const block: PendingBlock = { seq, frame, sentAtMs: 0 };
    this.nextSeq = seq + 1;
    const lost = this.pending.push(block);
    if (lost) {
      if (lost.sentAtMs === 0) {
        this.stats.blocksDropped++;
        this.unsent--;
      } else {
        this.stats.blocksEvicted++;
      }
    }
    if (this.linkState === "open") {
      block.sentAtMs = nowMs;
      this.stats.blocksSent++;
    } else {
      this.unsent++;
    }
    return lost;
  }

  /**
   * The runner's ack: every block up to `seq` arrived, every block up to `committedSeq` (`seq`
   * when absent, never past `seq`) is done with. Each block released is handed to `onReleased`
   * (oldest first) for the caller to reuse its frame; returns how many were released.
   */
  ack(
    seq: number,
    committedSeq: number | undefined,
    nowMs: number,
    onReleased?: (block: PendingBlock) => void,
  ): number {
    const committed = Math.min(seq, committedSeq ?? seq);
    if (seq > this.lastAcked) {
      this.lastAcked = seq;
      this.backoffMs = this.o.backoffMinMs; // a working link resets the backoff
      const block = this.kept(seq);
      if (block !== undefined && block.sentAtMs !== 0) {
        this.rtt.record(nowMs - block.sentAtMs);
        recordMs(this.rttHistogram, nowMs - block.sentAtMs);
      }
    }
    let released = 0;
    for (let b = this.pending.peek(); b !== undefined && b.seq <= committed; b = this.pending.peek()) {
      this.pending.shift();
      if (b.sentAtMs === 0) this.unsent--;
      this.stats.blocksAcked++;
      released++;
      onReleased?.(b);
    }
    if (committed > this.lastCommitted) this.lastCommitted = committed;
    return released;
  }

  /**
   * The call is over: no block follows. Returns the `stop` text frame to send now when the link
   * is open; otherwise the next opening carries it (call `connect` in case it never dialled).
   * After `graceMs` from `nowMs`, `tick` gives up. Check `finished` after sending.
   */
  stop(reason: string, graceMs: number, nowMs: number): string | undefined {
    if (this.linkState === "closed" || this.stopText !== undefined) return undefined;
    this.stopText = encodeControl({ type: "stop", reason, lastSeq: this.nextSeq - 1 });
    this.stopDeadlineMs = nowMs + graceMs;
    if (this.linkState !== "open") return undefined;
    this.stopSent = true;
    return this.stopText;
  }

  /**
   * Wakes the sender at `nowMs` (at or after `nextDueMs`). `dial`: open a socket now; `give_up`:
   * the stop's grace is over with blocks still uncommitted (`pendingBlocks` of them): the link
   * is closed, close the socket (1001). Undefined: nothing due yet.
   */
  tick(nowMs: number): RelaySenderWake | undefined {
    if (this.linkState === "closed") return undefined;
    if (this.stopDeadlineMs !== undefined && nowMs >= this.stopDeadlineMs) {
      this.close();
      return "give_up";
    }
    if (this.linkState === "connecting" && this.dialDueMs !== undefined && nowMs >= this.dialDueMs) {
      this.dialDueMs = undefined;
      return "dial";
    }
    return undefined;
  }

  /** Closes the link for good (done, given up, or the call's object is going away). */
  close(): void {
    this.linkState = "closed";
    this.dialDueMs = undefined;
  }

  /** A runner message could not be used (counted in `protocolErrors`). */
  rejected(): void {
    this.stats.protocolErrors++;
  }

  private redialAt(nowMs: number): number {
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.backoffMaxMs);
    this.dialDueMs = nowMs + delayMs;
    return this.dialDueMs;
  }

  /** The kept block `seq` (kept blocks have consecutive seqs), or undefined. */
  private kept(seq: number): PendingBlock | undefined {
    const oldest = this.pending.peek();
    if (oldest === undefined) return undefined;
    const block = this.pending.at(seq - oldest.seq);
    return block !== undefined && block.seq === seq ? block : undefined;
  }
}
