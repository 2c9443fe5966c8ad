/**
 * A call's transcript event stream inside its CallSession (adapter): runner events (typed: the
 * relay's parse validated them) are joined across runner sessions (`TranscriptContinuity`), numbered,
 * kept in a bounded window for replay, fanned out to the call's subscribers and forwarded to
 * the account's hub for `GET /events`. Nothing here awaits on the call's path: the hub is fed
 * by one request at a time from a bounded queue (`HubForwarder`).
 *
 * Each delivered event is the version 1 event (with the edge's utterance ids) plus `n`, its
 * number in the call (1, 2, 3, ...): `?since=n` on subscribe replays the events after it that
 * the call still holds.
 */
import { TranscriptContinuity, callEndedEvent } from "@ozen/shared";
import type { TranscriptEvent } from "@ozen/shared";
import { Fanout, subscribeSocket } from "./subscribers.js";
import type { Deliverable, FlowLimits, SocketHooks } from "./subscribers.js";
import type { CallEventStats, HubForwarderStats } from "../call/stats.js";

/** Events a call keeps for replay (`?since=`) and `GET /calls/{CallSid}/events` as JSON. */
const KEEP_EVENTS = 500;
/** Events waiting for the hub at most; past it partials go first, then the oldest. */
const HUB_QUEUE_MAX = 2000;
/** After the call ends, how long a subscriber may take to read what is left before 4008, ms. */
const DRAIN_AFTER_END_MS = 30_000;
/** Events per request to the hub at most. */
const HUB_BATCH_MAX = 200;

export interface HeldEvent extends Deliverable {
  readonly n: number;
  readonly wallMs: number;
}

/** Where the hub is: POSTs a batch of events; rejects or answers non-2xx on failure. */
export type HubPost = (batch: readonly Deliverable[]) => Promise<Response>;

/** Feeds the account hub, one request at a time, batching what queued meanwhile. */
export class HubForwarder {
  readonly stats: HubForwarderStats = { forwarded: 0, batches: 0, failures: 0, dropped: {} };
  private readonly queue: Deliverable[] = [];
  private busy = false;

  constructor(
    private readonly post: HubPost,
    private readonly onFailure: (error: string) => void,
  ) {}

  push(d: Deliverable): void {
    if (this.queue.length >= HUB_QUEUE_MAX) {
      let i = this.queue.findIndex((e) => e.type === "partial" || e.type === "meaningful");
      if (i < 0) i = 0;
      const [lost] = this.queue.splice(i, 1);
      this.stats.dropped[lost!.type] = (this.stats.dropped[lost!.type] ?? 0) + 1;
    }
    this.queue.push(d);
    if (!this.busy) void this.flush();
  }

  private async flush(): Promise<void> {
    this.busy = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, HUB_BATCH_MAX);
      try {
        const res = await this.post(batch);
        if (!res.ok) throw new Error(`hub answered HTTP ${res.status}`);
        this.stats.forwarded += batch.length;
        this.stats.batches++;
      } catch (e) {
        // the account stream is best effort (the call's own stream and the records are not):
        // a failed batch is counted, not retried, so a broken hub never holds the call's memory
        this.stats.failures++;
        for (const d of batch) this.stats.dropped[d.type] = (this.stats.dropped[d.type] ?? 0) + 1;
        this.onFailure(String(e));
      }
    }
    this.busy = false;
  }
}

export interface CallEventStreamOptions {
  readonly limits: FlowLimits;
  readonly hub: HubPost;
  readonly log: (level: "warn" | "error", key: string, msg: string, fields?: Record<string, unknown>) => void;
  /** Each event delivered into the stream (after continuity), e.g. for the call's record. */
  readonly onDelivered?: (e: TranscriptEvent) => void;
  /** The n of the call's first utterance id (one past any the call's record holds); default 1. */
  readonly firstUtteranceN?: () => number;
}

export class CallEventStream {
  private readonly fanout: Fanout;
  private readonly hub: HubForwarder;
  private continuity: TranscriptContinuity | undefined;
  private readonly held: HeldEvent[] = [];
  private n = 0;
  private ended = false;
  /** Closes the subscribers still reading DRAIN_AFTER_END_MS after the end (`closeStragglersLater`). */
  private stragglersTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly stats = { invalid: 0, delivered: {} as Record<string, number> };

  constructor(private readonly o: CallEventStreamOptions) {
    this.fanout = new Fanout(o.limits, () => this.forgetStragglers());
    this.hub = new HubForwarder(o.hub, (error) => o.log("warn", "hub", "account hub unreachable", { error }));
  }

  /** An event from the runner (validated where it entered the edge, `parseRunnerToEdge`). */
  fromRunner(callSid: string, event: TranscriptEvent): void {
    this.deliver(callSid, event);
  }

  /** The runner sent an event that is not a valid transcript event: counted, logged once. */
  invalidEvent(error: string): void {
    this.stats.invalid++;
    this.o.log("warn", "bad_event", "runner sent an invalid transcript event; dropped", { error });
  }

  /**
   * The call is over at the edge. When no `call.ended` came from the runner (it may be gone),
   * the edge says it, so every subscriber and the hub learn the call ended.
   */
  callEnded(callSid: string, reason: string): void {
    if (!this.ended) this.deliver(callSid, callEndedEvent(callSid, reason, Date.now()));
  }

  private deliver(callSid: string, event: TranscriptEvent): void {
    this.continuity ??= new TranscriptContinuity(callSid, { firstUtteranceN: this.o.firstUtteranceN?.() ?? 1 });
    const verdict = this.continuity.accept(event);
    if (!("event" in verdict)) return;
    const e = verdict.event;
    const n = ++this.n;
    const d: HeldEvent = {
      n,
      wallMs: e.wallMs,
      type: e.type,
      text: JSON.stringify({ ...e, n }),
      ...("utteranceId" in e ? { utteranceId: e.utteranceId } : {}),
    };
    this.stats.delivered[e.type] = (this.stats.delivered[e.type] ?? 0) + 1;
    this.held.push(d);
    if (this.held.length > KEEP_EVENTS) this.held.shift();
    this.fanout.publish(d);
    this.hub.push(d);
    this.o.onDelivered?.(e);
    if (e.type === "call.ended") {
      this.ended = true;
      this.fanout.closeWhenDrained(1000, "call ended");
      this.closeStragglersLater();
    }
  }

  /**
   * A subscriber still reading when the call ended gets DRAIN_AFTER_END_MS, then 4008: one that
   * stopped reading would keep the object (and its socket) alive for nothing. The timer runs only
   * while such a subscriber is there, because a pending timer keeps the Durable Object in memory
   * too: workerd evicts an object about 10 s after its last activity, and an unconditional timer
   * kept every ended call's object 30 s longer, overlapping the next calls' (`ozen bench soak`).
   */
  private closeStragglersLater(): void {
    if (this.stragglersTimer !== undefined || this.fanout.size === 0) return;
    this.stragglersTimer = setTimeout(() => {
      this.stragglersTimer = undefined;
      this.fanout.closeStragglers();
    }, DRAIN_AFTER_END_MS);
  }

  /** The last subscriber went away: nobody is left to wait for. */
  private forgetStragglers(): void {
    if (this.stragglersTimer !== undefined) clearTimeout(this.stragglersTimer);
    this.stragglersTimer = undefined;
  }

  /** An event the edge itself says (the agent's voice, DTMF): numbered and delivered like the runner's. */
  fromEdge(callSid: string, event: TranscriptEvent): void {
    this.deliver(callSid, event);
  }

  /**
   * `GET /calls/{CallSid}/events` with an upgrade: a subscriber, replaying after `?since=`;
   * `hooks` take what it sends besides acks (agent control).
   */
  subscribe(url: URL, hooks?: SocketHooks): Response {
    const since = url.searchParams.get("since");
    const after = since === null ? undefined : Number(since);
    if (after !== undefined && !(Number.isSafeInteger(after) && after >= 0)) {
      return new Response(`since is ${JSON.stringify(since)}, expected an event number n >= 0`, { status: 400 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    // binary frames (agent audio) as ArrayBuffers, not Blobs (the standard default in newer workerd)
    (server as unknown as { binaryType: string }).binaryType = "arraybuffer";
    const s = subscribeSocket(this.fanout, server, hooks);
    if (after !== undefined) s.replay(this.held.filter((d) => d.n > after));
    if (this.ended) {
      s.closeWhenDrained(1000, "call ended");
      this.closeStragglersLater();
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  /** The held events, parsed (`GET /calls/{CallSid}/events` without an upgrade). */
  recent(): unknown[] {
    return this.held.map((d) => JSON.parse(d.text) as unknown);
  }

  snapshot(): CallEventStats {
    return {
      invalid: this.stats.invalid,
      delivered: { ...this.stats.delivered },
      continuity: this.continuity?.counters ?? { runnerSessions: 0, dropped: {}, overlappingFinals: 0 },
      subscribers: { ...this.fanout.totals, dropped: { ...this.fanout.totals.dropped }, list: this.fanout.list() },
      hub: { ...this.hub.stats, dropped: { ...this.hub.stats.dropped } },
    };
  }
}
