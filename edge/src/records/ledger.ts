/**
 * What a call leaves behind, kept by its Durable Object: the record in the object's storage
 * (`call-record.ts`), its copy in D1 (`records.ts`) and the webhook outbox (`outbox.ts`, sent by
 * `webhooks.ts`). Every event is stored before anything is sent about it; D1 writes and webhook
 * POSTs that fail are retried with capped exponential backoff through the object's one alarm
 * (`alarms.ts`), so they go on after the call ended, and after an eviction, until done.
 */
import { parseTranscriptEvent } from "@ozen/shared";
import type { TranscriptEvent } from "@ozen/shared";
import { AlarmMux } from "./alarms.js";
import { CallRecordStore } from "./call-record.js";
import type { CallRecord, TimelineEntry, UtteranceRecord } from "./call-record.js";
import type { DeliveryConfig } from "./delivery-config.js";
import { Outbox } from "./outbox.js";
import type { OutboxState } from "./outbox.js";
import { writeRecords } from "./records.js";
import { backoffMs, postWebhook, webhookBody } from "./webhooks.js";

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** Utterances per D1 batch. */
const D1_BATCH_UTTERANCES = 100;
/** A D1 write that has not answered in this long counts as failed (it is retried; upserts are idempotent). */
const D1_TIMEOUT_MS = 15_000;

/** How long one `alarm()` waits for the work it started, ms (see `alarm`). */
const ALARM_BUDGET_MS = 1000;

/** The call as its Durable Object holds it: `GET /calls/{CallSid}/record`. */
export interface LedgerView {
  readonly call: CallRecord | null;
  readonly utterances: UtteranceRecord[];
  readonly timeline: TimelineEntry[];
  readonly d1: { readonly configured: boolean; readonly unwrittenUtterances: number; readonly upToDate: boolean };
  readonly webhook: { readonly configured: boolean; readonly waiting: number } & OutboxState;
}

export class CallLedger {
  private readonly store: CallRecordStore;
  private readonly outbox: Outbox;
  private readonly alarms: AlarmMux;
  private flushing: Promise<void> | undefined;
  private flushAgain = false;
  /** Failed D1 writes in a row, and no write before `d1RetryAtMs` (backoff). */
  private d1Failures = 0;
  private d1RetryAtMs = 0;
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private readonly loggedOnce = new Set<string>();

  constructor(
    storage: DurableObjectStorage,
    private readonly db: D1Database | undefined,
    private readonly config: DeliveryConfig,
    private readonly log: Log,
  ) {
    this.store = new CallRecordStore(storage.sql);
    this.outbox = new Outbox(storage.sql, config.webhookOutboxMax);
    this.alarms = new AlarmMux(storage);
  }

  /** Twilio's `start`: the call's record exists from here, and D1 gets it soon. */
  begin(o: { callSid: string; accountSid: string; streamSid: string; startedAtMs: number }): void {
    this.store.begin(o);
    this.flushNow();
  }

  /** A transcript event from the runner (not yet validated). */
  onEvent(raw: unknown): void {
    const r = parseTranscriptEvent(raw);
    if (!r.ok) {
      this.store.count("badEvents");
      this.logOnce("bad_event", "warn", "a transcript event from the runner is malformed; not recorded", {
        error: r.message,
      });
      return;
    }
    this.record(r.event);
  }

  /**
   * The edge's side of the end (after the runner had its chance to say `call.ended`): when the
   * runner never did (unreachable, or gone), the edge records and sends one itself.
   */
  finish(reason: string, nowMs: number): void {
    const call = this.store.get();
    if (!call || call.status === "ended") return;
    this.record({ v: 1, type: "call.ended", callSid: call.callSid, wallMs: nowMs, reason });
  }

  /** The n of the first utterance id a (re)started object gives: past every id the call gave. */
  nextUtteranceN(): number {
    return this.store.nextUtteranceN();
  }

  private record(e: TranscriptEvent): void {
    if ("utteranceId" in e) this.store.noteUtterance(e.utteranceId);
    const call = this.store.get();
    if (!call) {
      this.logOnce("no_call", "warn", "a transcript event came before the call's start; not recorded");
      return;
    }
    if (e.type === "call.ended" && call.status === "ended") return; // one call.ended per call
    const changed = this.store.apply(e);
    this.enqueueWebhook(call.accountSid, e);
    if (!changed) return;
    const now = Date.now();
    if (
      e.type === "call.ended" ||
      (e.type === "final" && this.store.unwrittenCount() >= this.config.recordsFlushFinals)
    ) {
      this.flushNow();
    } else {
      this.alarms.schedule("d1", now + this.config.recordsFlushMs);
    }
  }

  // ---- D1 ----

  /** Writes to D1 now, unless a failed write's backoff is running (its alarm writes then). */
  private flushNow(): void {
    if (Date.now() < this.d1RetryAtMs) return;
    void this.flush();
  }

  private flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    this.flushing = this.writeUnwritten().finally(() => {
      this.flushing = undefined;
      if (this.flushAgain) {
        this.flushAgain = false;
        this.flushNow();
      }
    });
    return this.flushing;
  }

  private async writeUnwritten(): Promise<void> {
    if (!this.db) {
      this.logOnce("no_d1", "warn", "no D1 binding DB: records stay in the Durable Object only");
      return;
    }
    for (;;) {
      const w = this.store.unwritten(D1_BATCH_UTTERANCES);
      if (!w) break;
      try {
        await withTimeout(writeRecords(this.db, w, Date.now()), D1_TIMEOUT_MS, "D1 write");
      } catch (e) {
        this.d1Failures++;
        const delay = backoffMs(
          this.d1Failures,
          this.config.recordsRetryMinMs,
          this.config.recordsRetryMaxMs,
          Math.random(),
        );
        this.d1RetryAtMs = Date.now() + delay;
        this.store.count("d1Failures");
        this.alarms.schedule("d1", this.d1RetryAtMs);
        this.logOnce(`d1_fail_${this.d1Failures === 1 ? "first" : "again"}`, "warn", "D1 write failed; retrying", {
          error: String(e).slice(0, 200),
          retryInMs: delay,
        });
        return;
      }
      this.store.written(w);
      this.store.count("d1Writes");
      this.store.count("d1UtterancesWritten", w.utterances.length);
      if (this.d1Failures > 0) {
        this.log("info", "D1 answers again", { failures: this.d1Failures });
        this.d1Failures = 0;
        this.d1RetryAtMs = 0;
      }
    }
    this.alarms.cancel("d1");
  }

  // ---- webhooks ----

  private enqueueWebhook(accountSid: string, e: TranscriptEvent): void {
    const target = this.config.webhookFor(accountSid);
    if (!target || !target.events.has(e.type)) return;
    const { dropped } = this.outbox.enqueue(e.type, (seq) => webhookBody(accountSid, seq, e));
    if (dropped.partials + dropped.others > 0) {
      this.store.count("webhookDroppedPartials", dropped.partials);
      this.store.count("webhookDropped", dropped.others);
      this.logOnce("outbox_full", "error", "webhook outbox full: oldest events dropped", {
        max: this.config.webhookOutboxMax,
      });
    }
    void this.pump();
  }

  /** Sends the outbox in order, one event at a time, until it is empty or an attempt fails. */
  private pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    this.pumping = this.send().finally(() => {
      this.pumping = undefined;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        void this.pump();
      }
    });
    return this.pumping;
  }

  private async send(): Promise<void> {
    for (;;) {
      this.pumpAgain = false;
      const head = this.outbox.head();
      const call = this.store.get();
      if (!head || !call) return;
      const target = this.config.webhookFor(call.accountSid);
      if (!target) {
        this.store.count("webhookDropped", this.outbox.clear()); // the account's webhook was removed
        return;
      }
      const st = this.outbox.state();
      const now = Date.now();
      if (st.failingSinceMs !== null && now - st.failingSinceMs > this.config.webhookGiveUpMs) {
        const n = this.outbox.clear();
        this.store.count("webhookGivenUp", n);
        this.store.save();
        this.log("error", "webhook receiver failed for too long: this call's waiting events are dropped", {
          dropped: n,
          failingForMs: now - st.failingSinceMs,
        });
        return;
      }
      if (st.nextAttemptMs !== null && now < st.nextAttemptMs) {
        this.alarms.schedule("webhook", st.nextAttemptMs);
        return;
      }
      const result = await postWebhook({
        url: target.url,
        secret: target.secret,
        idempotencyKey: `${call.callSid}:${head.seq}`,
        type: head.type,
        attempt: head.attempts + 1,
        body: head.body,
        timeoutMs: this.config.webhookTimeoutMs,
        nowMs: now,
      });
      if (result.ok) {
        this.outbox.delivered(head.seq);
        this.store.count("webhookDelivered");
        if (st.failures > 0) this.log("info", "webhook receiver answers again", { failures: st.failures });
        if (call.status === "ended" && this.outbox.size() === 0) {
          this.alarms.cancel("webhook");
          this.store.save(); // the final delivery counters go to D1 with the next write
          this.alarms.schedule("d1", Date.now());
        }
        continue;
      }
      const delay = backoffMs(
        st.failures + 1,
        this.config.webhookRetryMinMs,
        this.config.webhookRetryMaxMs,
        Math.random(),
      );
      this.outbox.failed(head.seq, now, now + delay);
      this.store.count("webhookFailedAttempts");
      this.alarms.schedule("webhook", now + delay);
      this.logOnce("webhook_fail", "warn", "webhook POST failed; retrying with backoff", {
        error: result.detail,
        retryInMs: delay,
      });
      return;
    }
  }

  // ---- the alarm, and reading ----

  /**
   * The object's `alarm()`: starts whatever is due (D1 writes, webhook retries) and waits for it
   * at most `ALARM_BUDGET_MS`. An object runs one alarm at a time, so a long webhook backlog
   * awaited here would hold a due D1 retry back; work still going on after the budget goes on in
   * the background and its purpose is due again one budget later (if the object is evicted
   * meanwhile, that alarm resumes it from storage).
   */
  async alarm(): Promise<void> {
    const due = this.alarms.takeDue(Date.now(), ["d1", "webhook"]);
    const work: [string, Promise<void>][] = [];
    if (due.includes("d1")) {
      this.d1RetryAtMs = 0;
      work.push(["d1", this.flush()]);
    }
    if (due.includes("webhook")) work.push(["webhook", this.pump()]);
    const pending = new Set(work.map(([purpose]) => purpose));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(work.map(([purpose, p]) => p.finally(() => pending.delete(purpose)))),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ALARM_BUDGET_MS);
      }),
    ]);
    if (timer !== undefined) clearTimeout(timer);
    for (const purpose of pending) this.alarms.schedule(purpose, Date.now() + ALARM_BUDGET_MS);
    this.alarms.arm();
  }

  /** The call this ledger records, once it began (also after an eviction: it is in storage). */
  callSid(): string | undefined {
    return this.store.get()?.callSid;
  }

  /** What waits now: utterances not yet in D1, webhook events not yet delivered (for the edge's metrics). */
  backlog(): { d1Utterances: number; webhookEvents: number } {
    return { d1Utterances: this.db ? this.store.unwrittenCount() : 0, webhookEvents: this.outbox.size() };
  }

  /** Resolves when the D1 write and webhook sends under way are done, or after `maxMs`. */
  async settled(maxMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([this.flushing, this.pumping]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs))),
    ]);
    if (timer !== undefined) clearTimeout(timer);
  }

  /** Adds to one of the record's counters (saved with the record's next change). */
  count(name: string, by = 1): void {
    this.store.count(name, by);
  }

  view(): LedgerView {
    const call = this.store.get() ?? null;
    const unwritten = this.store.unwrittenCount();
    return {
      call,
      utterances: this.store.utterances(),
      timeline: this.store.timeline(),
      d1: { configured: this.db !== undefined, unwrittenUtterances: unwritten, upToDate: !this.store.unwritten(1) },
      webhook: {
        configured: call ? this.config.webhookFor(call.accountSid) !== undefined : false,
        waiting: this.outbox.size(),
        ...this.outbox.state(),
      },
    };
  }

  private logOnce(key: string, level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void {
    if (this.loggedOnce.has(key)) return;
    this.loggedOnce.add(key);
    this.log(level, msg, fields);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}
