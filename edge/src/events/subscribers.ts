/**
 * Fan-out of transcript events to agent subscribers (WebSockets), with flow control so that a
 * slow subscriber never slows the call or the other subscribers.
 *
 * Why application-level: a workerd WebSocket exposes no backlog (no `bufferedAmount`), and its
 * `send()` queues without bound, so the edge cannot see a slow reader from the socket. Instead
 * every subscriber acknowledges what it has read: it sends `{"ack":N}`, N = the number of events
 * it has received on this socket so far (cumulative; one ack may cover many events). At most
 * `windowEvents` events are in flight (sent, not yet acknowledged); the rest wait in the
 * subscriber's buffer, at most `bufferEvents` of them. When the buffer is full:
 * - a partial or meaningful event makes room by dropping one, superseded partials first (an
 *   older partial of an utterance with a newer event queued), then the oldest partial or
 *   meaningful; each drop is counted for the subscriber and in the totals;
 * - finals and call events are never dropped: when one cannot be queued because the buffer holds
 *   nothing droppable, the subscriber is closed with 4008 "too slow: N finals pending; resume
 *   from records" (it can resume with `?since=` or from the records API).
 * Publishing never awaits and costs O(1) per subscriber except when a buffer is full.
 */

/** The WebSocket as the fan-out uses it (a workerd `WebSocket` fits). */
export interface SubscriberSocket {
  send(text: string): void;
  close(code: number, reason: string): void;
}

export interface FlowLimits {
  /** Events sent but not yet acknowledged, at most. */
  readonly windowEvents: number;
  /** Events waiting at the edge for the window, at most. */
  readonly bufferEvents: number;
}

/** An event ready to deliver: its text and what the drop rule needs to know about it. */
export interface Deliverable {
  readonly text: string;
  readonly type: string;
  /** The utterance it belongs to, for partial, meaningful and final. */
  readonly utteranceId?: string;
}

/** The close code for a subscriber that fell behind on events that are never dropped. */
export const TOO_SLOW_CLOSE_CODE = 4008;

export interface SubscriberCounters {
  readonly id: number;
  /** Events written to the socket. */
  sent: number;
  /** Events the subscriber acknowledged. */
  acked: number;
  /** Events waiting in the buffer now. */
  queued: number;
  /** Events dropped from the buffer, by type (partial, meaningful). */
  dropped: Record<string, number>;
  /** Of those, partials dropped because a newer event of their utterance was queued. */
  droppedSuperseded: number;
  /** Close code and reason when the edge closed it. */
  closed: string | null;
}

export interface FanoutTotals {
  /** Subscribers connected now. */
  active: number;
  /** Subscribers ever connected. */
  subscribed: number;
  sent: number;
  dropped: Record<string, number>;
  droppedSuperseded: number;
  /** Subscribers closed with 4008 (too slow on finals). */
  closedTooSlow: number;
  /** Acknowledgements that were not a valid `{"ack":N}` (ignored). */
  badAcks: number;
}

export function newFanoutTotals(): FanoutTotals {
  return { active: 0, subscribed: 0, sent: 0, dropped: {}, droppedSuperseded: 0, closedTooSlow: 0, badAcks: 0 };
}

function droppable(type: string): boolean {
  return type === "partial" || type === "meaningful";
}

/** One subscriber's socket, window and buffer. */
export class Subscriber {
  readonly counters: SubscriberCounters;
  private readonly queue: Deliverable[] = [];
  /** Held events being replayed (`?since=`): sent before the queue, outside its bound. */
  private backlog: Deliverable[] = [];
  private backlogAt = 0;
  private open = true;
  /** Close once the buffer is empty (the stream is over). */
  private closing: { code: number; reason: string } | undefined;

  constructor(
    id: number,
    private readonly socket: SubscriberSocket,
    private readonly limits: FlowLimits,
    private readonly totals: FanoutTotals,
    /** Called once when the subscriber is closed by the edge or its socket went away. */
    private readonly onGone: (s: Subscriber) => void,
  ) {
    this.counters = { id, sent: 0, acked: 0, queued: 0, dropped: {}, droppedSuperseded: 0, closed: null };
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Events sent and not yet acknowledged. */
  get inFlight(): number {
    return this.counters.sent - this.counters.acked;
  }

  /** Takes an event for this subscriber: sent now when the window allows, else buffered. */
  offer(d: Deliverable): void {
    if (!this.open) return;
    if (this.queue.length === 0 && this.replaying === 0 && this.inFlight < this.limits.windowEvents) {
      this.write(d);
      return;
    }
    if (this.queue.length >= this.limits.bufferEvents && !this.makeRoom(d)) return;
    this.queue.push(d);
    this.counters.queued = this.queue.length;
  }

  /**
   * Events the stream still holds, sent first and paced by the window like the rest. They are
   * not counted against the buffer: the stream keeps them anyway (a bounded window of its own).
   */
  replay(events: readonly Deliverable[]): void {
    if (!this.open || events.length === 0) return;
    this.backlog = [...this.backlog.slice(this.backlogAt), ...events];
    this.backlogAt = 0;
    this.pump();
  }

  /** Replayed events not yet sent. */
  get replaying(): number {
    return this.backlog.length - this.backlogAt;
  }

  /** A text message from the subscriber: `{"ack":N}`. Anything else is counted and ignored. */
  onMessage(data: unknown): void {
    const n = parseAck(data);
    if (n === undefined || n < this.counters.acked || n > this.counters.sent) {
      this.totals.badAcks++;
      return;
    }
    this.counters.acked = n;
    this.pump();
  }

  /** Closes once everything buffered is sent (the stream is over). */
  closeWhenDrained(code: number, reason: string): void {
    if (!this.open) return;
    this.closing = { code, reason };
    if (this.drained) this.close(code, reason);
  }

  /**
   * Closes with 4008 when the subscriber still has events waiting (it stopped reading after the
   * stream ended); the reason counts the finals among them.
   */
  closeIfBehind(): void {
    if (!this.open || this.drained) return;
    const pending = [...this.backlog.slice(this.backlogAt), ...this.queue];
    const finals = pending.filter((e) => e.type === "final").length;
    this.totals.closedTooSlow++;
    this.close(TOO_SLOW_CLOSE_CODE, `too slow: ${finals} finals pending; resume from records`);
  }

  /** Closes from the edge's side (call over, too slow); idempotent. */
  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.counters.closed = `${code} ${reason}`;
    this.queue.length = 0;
    this.counters.queued = 0;
    try {
      this.socket.close(code, reason);
    } catch {
      // already closed
    }
    this.onGone(this);
  }

  /** The socket closed or failed on the subscriber's side. */
  gone(): void {
    if (!this.open) return;
    this.open = false;
    this.queue.length = 0;
    this.counters.queued = 0;
    this.onGone(this);
  }

  /** True when nothing is waiting to be sent. */
  get drained(): boolean {
    return this.queue.length === 0 && this.replaying === 0;
  }

  private pump(): void {
    while (this.replaying > 0 && this.inFlight < this.limits.windowEvents && this.open)
      this.write(this.backlog[this.backlogAt++]!);
    if (this.replaying === 0 && this.backlog.length > 0) {
      this.backlog = [];
      this.backlogAt = 0;
    }
    if (this.replaying > 0) return;
    let i = 0;
    while (i < this.queue.length && this.inFlight < this.limits.windowEvents && this.open) this.write(this.queue[i++]!);
    if (i > 0) this.queue.splice(0, i);
    this.counters.queued = this.queue.length;
    if (this.closing && this.drained) this.close(this.closing.code, this.closing.reason);
  }

  private write(d: Deliverable): void {
    try {
      this.socket.send(d.text);
    } catch {
      this.gone();
      return;
    }
    this.counters.sent++;
    this.totals.sent++;
  }

  /**
   * The buffer is full and `incoming` must go in: drops one droppable event (superseded partial
   * first, then the oldest droppable), or, when there is none, drops `incoming` if it is
   * droppable itself, or closes the subscriber (a final or call event cannot wait). Returns
   * whether `incoming` should be queued.
   */
  private makeRoom(incoming: Deliverable): boolean {
    const q = this.queue;
    let victim = -1;
    let superseded = false;
    // superseded: a queued partial/meaningful with a later event of the same utterance (queued, or incoming)
    const later = new Set<string>();
    if (incoming.utteranceId !== undefined) later.add(incoming.utteranceId);
    for (let i = q.length - 1; i >= 0; i--) {
      const e = q[i]!;
      if (droppable(e.type) && e.utteranceId !== undefined && later.has(e.utteranceId)) {
        victim = i; // keep scanning backwards: the oldest superseded one wins
        superseded = true;
      }
      if (e.utteranceId !== undefined) later.add(e.utteranceId);
    }
    if (victim < 0) victim = q.findIndex((e) => droppable(e.type));
    if (victim < 0) {
      if (droppable(incoming.type)) {
        this.countDrop(incoming.type, false);
        return false;
      }
      const finals = q.filter((e) => e.type === "final").length + (incoming.type === "final" ? 1 : 0);
      this.totals.closedTooSlow++;
      this.close(TOO_SLOW_CLOSE_CODE, `too slow: ${finals} finals pending; resume from records`);
      return false;
    }
    const [lost] = q.splice(victim, 1);
    this.countDrop(lost!.type, superseded);
    return true;
  }

  private countDrop(type: string, superseded: boolean): void {
    this.counters.dropped[type] = (this.counters.dropped[type] ?? 0) + 1;
    this.totals.dropped[type] = (this.totals.dropped[type] ?? 0) + 1;
    if (superseded) {
      this.counters.droppedSuperseded++;
      this.totals.droppedSuperseded++;
    }
  }
}

/** `{"ack":N}` -> N (a whole number), else undefined. */
export function parseAck(data: unknown): number | undefined {
  if (typeof data !== "string" || data.length > 100) return undefined;
  try {
    const v = JSON.parse(data) as unknown;
    const n = typeof v === "object" && v !== null ? (v as Record<string, unknown>)["ack"] : undefined;
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** How many gone subscribers' counters a fan-out keeps for stats. */
const KEEP_GONE = 20;

/** Every subscriber of one stream (a call, or an account), and their totals. */
export class Fanout {
  readonly totals: FanoutTotals = newFanoutTotals();
  private readonly subscribers = new Set<Subscriber>();
  /** Counters of the last subscribers that went away (closed by the edge or by themselves). */
  private readonly gone: SubscriberCounters[] = [];
  private nextId = 1;

  constructor(
    private readonly limits: FlowLimits,
    /** Called when the last subscriber went away. */
    private readonly onEmpty?: () => void,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  /** Adds a subscriber on `socket`; the caller wires the socket's message/close events to it. */
  add(socket: SubscriberSocket): Subscriber {
    const s = new Subscriber(this.nextId++, socket, this.limits, this.totals, (gone) => {
      if (!this.subscribers.delete(gone)) return;
      this.totals.active = this.subscribers.size;
      this.gone.push(gone.counters);
      if (this.gone.length > KEEP_GONE) this.gone.shift();
      if (this.subscribers.size === 0) this.onEmpty?.();
    });
    this.subscribers.add(s);
    this.totals.subscribed++;
    this.totals.active = this.subscribers.size;
    return s;
  }

  publish(d: Deliverable): void {
    for (const s of this.subscribers) s.offer(d);
  }

  /** Closes every subscriber once its buffer is sent (the call is over). */
  closeWhenDrained(code: number, reason: string): void {
    for (const s of [...this.subscribers]) s.closeWhenDrained(code, reason);
  }

  /** Closes, with 4008, every subscriber that still has events waiting. */
  closeStragglers(): void {
    for (const s of [...this.subscribers]) s.closeIfBehind();
  }

  /** Closes every subscriber at once. */
  closeAll(code: number, reason: string): void {
    for (const s of [...this.subscribers]) s.close(code, reason);
  }

  /** Per-subscriber counters for stats: the connected ones, then the last ones that went away. */
  list(): SubscriberCounters[] {
    return [...[...this.subscribers].map((s) => s.counters), ...this.gone].map((c) => ({
      ...c,
      dropped: { ...c.dropped },
    }));
  }
}

/**
 * What a socket may do besides acknowledging (agent control, `control.ts`): `opened` gets a
 * `reply` that queues a message to this socket (never dropped, counted like an event for acks);
 * `message` takes every message that is not an ack and says whether it handled it (else it is
 * counted as a bad ack); `gone` is called once when the socket closes.
 */
export interface SocketHooks {
  opened(reply: (message: object) => void): void;
  message(data: string | ArrayBuffer): boolean;
  gone(): void;
}

/** A workerd WebSocket as a subscriber of `fanout`: accepted, acks and close wired (and control, with `hooks`). */
export function subscribeSocket(fanout: Fanout, ws: WebSocket, hooks?: SocketHooks): Subscriber {
  const s = fanout.add(ws);
  const gone = () => {
    s.gone();
    hooks?.gone();
  };
  ws.addEventListener("message", (ev) => {
    const data = ev.data;
    if (hooks && !(typeof data === "string" && parseAck(data) !== undefined) && hooks.message(data)) return;
    s.onMessage(data);
  });
  ws.addEventListener("close", gone);
  ws.addEventListener("error", gone);
  hooks?.opened((message) => s.offer({ text: JSON.stringify(message), type: "control" }));
  return s;
}
