/**
 * A call's reports to the EdgeMetrics object (adapter): its totals (bad input, relay reconnects,
 * subscriber drops) and backlogs (D1, webhooks), at most every `REPORT_EVERY_MS` while it
 * streams, once more when it ends, and after each alarm while its records are still being
 * delivered. Never awaited on the media path: the POST runs on its own, one at a time per call,
 * and a failed one is simply superseded by the next (a report carries totals, not increments).
 */
import type { CallMetricsReport } from "@ozen/shared";

/** Shortest time between two reports of a call while it streams, ms. */
export const REPORT_EVERY_MS = 5000;

export class CallMetricsReporter {
  private lastReportMs = 0;
  private sending = false;
  /** A report wanted while one was being sent: it goes when that one is done. */
  private again = false;
  private last: string | undefined;

  constructor(
    private readonly metrics: () => DurableObjectStub,
    private readonly snapshot: () => CallMetricsReport | undefined,
  ) {}

  /** Reports when the last report is `REPORT_EVERY_MS` old (cheap otherwise: the hot path calls it). */
  every(nowMs: number): void {
    if (nowMs - this.lastReportMs >= REPORT_EVERY_MS) this.now(nowMs);
  }

  /** Reports now (the call ended, or its backlogs moved); skipped when nothing changed since the last. */
  now(nowMs: number): void {
    this.lastReportMs = nowMs;
    if (this.sending) {
      this.again = true;
      return;
    }
    const report = this.snapshot();
    if (!report) return;
    const body = JSON.stringify(report);
    if (body === this.last) return;
    this.sending = true;
    void this.metrics()
      .fetch("https://metrics/report", { method: "POST", body })
      .then(
        (res) => {
          if (res.ok) this.last = body;
        },
        () => {},
      )
      .finally(() => {
        this.sending = false;
        if (this.again) {
          this.again = false;
          this.now(Date.now());
        }
      });
  }
}

/** What a call's parts say, for its report. */
export interface CallReportParts {
  readonly callSid: string;
  readonly streaming: boolean;
  readonly bad: Readonly<Record<string, number>>;
  /** The relay link's counters (none before the call started its link). */
  readonly relay:
    { readonly connects: number; readonly connectFailures: number; readonly blocksDropped: number } | undefined;
  readonly subscribers: { readonly dropped: Readonly<Record<string, number>>; readonly closedTooSlow: number };
  readonly backlog: { readonly d1Utterances: number; readonly webhookEvents: number };
}

/** The report of a call from its parts' counters. */
export function callMetricsReport(p: CallReportParts): CallMetricsReport {
  return {
    callSid: p.callSid,
    active: p.streaming,
    badInput: p.bad,
    relayReconnects: Math.max(0, (p.relay?.connects ?? 0) - 1),
    relayConnectFailures: p.relay?.connectFailures ?? 0,
    relayBlocksDropped: p.relay?.blocksDropped ?? 0,
    subscriberDrops: p.subscribers.dropped,
    subscribersClosedSlow: p.subscribers.closedTooSlow,
    d1BacklogUtterances: p.backlog.d1Utterances,
    webhookBacklogEvents: p.backlog.webhookEvents,
  };
}
