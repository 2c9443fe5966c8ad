/**
 * Settings of what a call leaves behind: D1 records (when they are written, how failures are
 * retried) and webhooks (where, signed with what, which event types, retry and bound). Read with
 * the rest of the edge's config (`config.ts`); every setting is in the README table.
 */
import type { TranscriptEventType } from "@ozen/shared";
import { TRANSCRIPT_EVENT_TYPES } from "@ozen/shared";

/** One account's webhook target. */
export interface WebhookTarget {
  readonly url: string;
  readonly secret: string;
  /** Event types POSTed; others are not queued at all. */
  readonly events: ReadonlySet<TranscriptEventType>;
}

export interface DeliveryConfig {
  /** Write to D1 once this many finals are waiting (and on `call.ended`). */
  readonly recordsFlushFinals: number;
  /** ... or at the latest this long after the first change that is not in D1 yet, ms. */
  readonly recordsFlushMs: number;
  /** D1 write retries: first delay and cap of the exponential backoff, ms. */
  readonly recordsRetryMinMs: number;
  readonly recordsRetryMaxMs: number;
  /** The webhook target of an account (`WEBHOOK_ACCOUNTS`, else `WEBHOOK_URL`); undefined: none. */
  webhookFor(accountSid: string): WebhookTarget | undefined;
  readonly webhookRetryMinMs: number;
  readonly webhookRetryMaxMs: number;
  /** One POST's time limit, ms; longer counts as a failure. */
  readonly webhookTimeoutMs: number;
  /** Events a call's outbox holds at most (see `outbox.ts` for what goes first past it). */
  readonly webhookOutboxMax: number;
  /** After failing this long without one success, a call's outbox is dropped (counted, logged), ms. */
  readonly webhookGiveUpMs: number;
}

/** Events POSTed unless `WEBHOOK_EVENTS` says otherwise: finals and call events, no partials. */
export const DEFAULT_WEBHOOK_EVENTS: readonly TranscriptEventType[] = [
  "call.started",
  "final",
  "engine.switched",
  "call.ended",
];

type Read = {
  str(key: string, fallback?: string): string;
  int(key: string, fallback: number, min: number, max: number): number;
  fail(message: string): never;
};

function eventTypes(read: Read, key: string, raw: string | readonly string[]): ReadonlySet<TranscriptEventType> {
  const list = typeof raw === "string" ? raw.split(",") : raw;
  const out = new Set<TranscriptEventType>();
  for (const item of list) {
    const t = String(item).trim();
    if (t === "") continue;
    if (!(TRANSCRIPT_EVENT_TYPES as readonly string[]).includes(t)) {
      read.fail(`${key} names ${JSON.stringify(t)}, expected some of ${TRANSCRIPT_EVENT_TYPES.join(", ")}`);
    }
    out.add(t as TranscriptEventType);
  }
  return out;
}

function target(read: Read, key: string, url: string, secret: string, events: ReadonlySet<TranscriptEventType>) {
  if (!/^https?:\/\/[^/?#]+/.test(url)) read.fail(`${key} url is ${JSON.stringify(url)}, expected http(s)://...`);
  if (secret.length < 16) read.fail(`${key} needs a secret of at least 16 characters to sign with`);
  return { url, secret, events };
}

export function loadDeliveryConfig(read: Read): DeliveryConfig {
  const defaultEvents = eventTypes(
    read,
    "WEBHOOK_EVENTS",
    read.str("WEBHOOK_EVENTS", DEFAULT_WEBHOOK_EVENTS.join(",")),
  );
  const url = read.str("WEBHOOK_URL", "");
  const fallback = url ? target(read, "WEBHOOK_URL", url, read.str("WEBHOOK_SECRET", ""), defaultEvents) : undefined;
  const perAccount = new Map<string, WebhookTarget | undefined>();
  const accountsJson = read.str("WEBHOOK_ACCOUNTS", "");
  if (accountsJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(accountsJson);
    } catch {
      read.fail("WEBHOOK_ACCOUNTS is not JSON");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      read.fail('WEBHOOK_ACCOUNTS must be an object: {"AC...": {"url": ..., "secret": ..., "events": [...]}}');
    }
    for (const [account, v] of Object.entries(parsed as Record<string, unknown>)) {
      const key = `WEBHOOK_ACCOUNTS.${account}`;
      if (v === null) {
        perAccount.set(account, undefined); // this account has no webhook even when WEBHOOK_URL is set
        continue;
      }
      const o = v as { url?: unknown; secret?: unknown; events?: unknown };
      if (typeof o !== "object" || typeof o.url !== "string" || typeof o.secret !== "string") {
        read.fail(`${key} must be {"url": string, "secret": string, "events"?: [...]} or null`);
      }
      const events = Array.isArray(o.events) ? eventTypes(read, key, o.events.map(String)) : defaultEvents;
      perAccount.set(account, target(read, key, o.url, o.secret, events));
    }
  }
  const recordsRetryMinMs = read.int("RECORDS_RETRY_MIN_MS", 1000, 10, 600_000);
  const webhookRetryMinMs = read.int("WEBHOOK_RETRY_MIN_MS", 1000, 10, 600_000);
  return {
    recordsFlushFinals: read.int("RECORDS_FLUSH_FINALS", 10, 1, 10_000),
    recordsFlushMs: read.int("RECORDS_FLUSH_MS", 5000, 10, 3_600_000),
    recordsRetryMinMs,
    recordsRetryMaxMs: read.int("RECORDS_RETRY_MAX_MS", 60_000, recordsRetryMinMs, 3_600_000),
    webhookFor: (accountSid) => (perAccount.has(accountSid) ? perAccount.get(accountSid) : fallback),
    webhookRetryMinMs,
    webhookRetryMaxMs: read.int("WEBHOOK_RETRY_MAX_MS", 60_000, webhookRetryMinMs, 3_600_000),
    webhookTimeoutMs: read.int("WEBHOOK_TIMEOUT_MS", 10_000, 100, 120_000),
    webhookOutboxMax: read.int("WEBHOOK_OUTBOX_MAX", 10_000, 1, 1_000_000),
    webhookGiveUpMs: read.int("WEBHOOK_GIVE_UP_MS", 86_400_000, 1000, 30 * 86_400_000),
  };
}
