/**
 * Settings of what a call leaves behind: D1 records (when they are written, how failures are
 * retried) and webhooks (where, signed with what, which event types, retry and bound). Read with
 * the rest of the edge's config (`config.ts`).
 */
import { SettingError, TRANSCRIPT_EVENT_TYPES, readSettings, setting } from "@ozen/shared";
import type { SettingsEnv, TranscriptEventType } from "@ozen/shared";

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

export const DELIVERY_RECORDS_SETTINGS = {
  RECORDS_FLUSH_FINALS: setting.int({
    description: "Write to D1 once this many finals wait (and on `call.ended`).",
    default: 10,
    min: 1,
    max: 10_000,
  }),
  RECORDS_FLUSH_MS: setting.int({
    description: "Write to D1 at the latest this long after a change D1 lacks, ms.",
    default: 5000,
    min: 10,
    max: 3_600_000,
  }),
  RECORDS_RETRY_MIN_MS: setting.int({
    description: "D1 write retries: first delay, ms (doubling, +-20% jitter).",
    default: 1000,
    min: 10,
    max: 600_000,
  }),
  RECORDS_RETRY_MAX_MS: setting.int({
    description: "D1 write retries: longest delay, ms.",
    default: 60_000,
    min: { setting: "RECORDS_RETRY_MIN_MS" },
    max: 3_600_000,
  }),
} as const;

export const DELIVERY_WEBHOOK_SETTINGS = {
  WEBHOOK_URL: setting.url({
    description:
      "Where every account's events are POSTed (unless `WEBHOOK_ACCOUNTS` says otherwise); unset: no webhooks.",
    schemes: ["https", "http"],
  }),
  WEBHOOK_SECRET: setting.secret({
    description: "The HMAC key that signs `WEBHOOK_URL`'s requests (`X-Ozen-Signature`); needed with it.",
    minLength: 16,
  }),
  WEBHOOK_EVENTS: setting.list({
    description: "Event types POSTed (no `partial`, `meaningful` by default).",
    of: TRANSCRIPT_EVENT_TYPES,
    default: DEFAULT_WEBHOOK_EVENTS,
  }),
  WEBHOOK_ACCOUNTS: setting.secret({
    description:
      'Per Twilio AccountSid, JSON: `{"AC...": {"url", "secret", "events": [...]}}`, or `null` for none; others use `WEBHOOK_URL`.',
  }),
  WEBHOOK_RETRY_MIN_MS: setting.int({
    description: "Webhook retries: first delay, ms (doubling, +-20% jitter).",
    default: 1000,
    min: 10,
    max: 600_000,
  }),
  WEBHOOK_RETRY_MAX_MS: setting.int({
    description: "Webhook retries: longest delay, ms.",
    default: 60_000,
    min: { setting: "WEBHOOK_RETRY_MIN_MS" },
    max: 3_600_000,
  }),
  WEBHOOK_TIMEOUT_MS: setting.int({
    description: "One POST's time limit, ms; longer is a failed attempt.",
    default: 10_000,
    min: 100,
    max: 120_000,
  }),
  WEBHOOK_OUTBOX_MAX: setting.int({
    description: "Events waiting per call, at most; past it the oldest partials go first.",
    default: 10_000,
    min: 1,
    max: 1_000_000,
  }),
  WEBHOOK_GIVE_UP_MS: setting.int({
    description:
      "A receiver failing this long without a success loses that call's waiting events (logged as an error), ms.",
    default: 86_400_000,
    min: 1000,
    max: 30 * 86_400_000,
  }),
} as const;

const ACCOUNT_SHAPE = '{"url": string, "secret": string, "events"?: [...]} or null';

/** The event types of one `WEBHOOK_ACCOUNTS` entry. */
function accountEvents(key: string, events: unknown[]): ReadonlySet<TranscriptEventType> {
  const out = new Set<TranscriptEventType>();
  for (const item of events) {
    const t = String(item).trim();
    if (!(TRANSCRIPT_EVENT_TYPES as readonly string[]).includes(t)) {
      throw new SettingError({
        setting: `${key} events`,
        value: t,
        problem: `names ${JSON.stringify(t)}`,
        expected: `some of ${TRANSCRIPT_EVENT_TYPES.join(", ")}`,
      });
    }
    out.add(t as TranscriptEventType);
  }
  return out;
}

/** One account's target, its url and secret held to the rules of `WEBHOOK_URL` and `WEBHOOK_SECRET`. */
function target(key: string, url: string, secret: string, events: ReadonlySet<TranscriptEventType>): WebhookTarget {
  const { WEBHOOK_URL, WEBHOOK_SECRET } = DELIVERY_WEBHOOK_SETTINGS;
  const noEarlier = () => undefined;
  const checkedUrl = WEBHOOK_URL.parse(`${key} url`, url, noEarlier);
  const checkedSecret = WEBHOOK_SECRET.parse(`${key} secret`, secret, noEarlier);
  if (checkedUrl === undefined)
    throw new SettingError({ setting: `${key} url`, value: url, expected: WEBHOOK_URL.expected });
  if (checkedSecret === undefined) {
    throw new SettingError({
      setting: `${key} secret`,
      value: secret,
      secret: true,
      expected: WEBHOOK_SECRET.expected,
    });
  }
  return { url: checkedUrl, secret: checkedSecret, events };
}

function webhookAccounts(
  json: string,
  defaultEvents: ReadonlySet<TranscriptEventType>,
): Map<string, WebhookTarget | undefined> {
  const perAccount = new Map<string, WebhookTarget | undefined>();
  const malformed = (problem: string) =>
    new SettingError({
      setting: "WEBHOOK_ACCOUNTS",
      value: json,
      secret: true,
      problem,
      expected: `{"AC...": ${ACCOUNT_SHAPE}}`,
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw malformed("is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw malformed("is not a JSON object");
  for (const [account, v] of Object.entries(parsed as Record<string, unknown>)) {
    const key = `WEBHOOK_ACCOUNTS.${account}`;
    if (v === null) {
      perAccount.set(account, undefined); // this account has no webhook even when WEBHOOK_URL is set
      continue;
    }
    const o = v as { url?: unknown; secret?: unknown; events?: unknown };
    if (typeof o !== "object" || typeof o.url !== "string" || typeof o.secret !== "string") {
      throw new SettingError({
        setting: key,
        value: v,
        secret: true,
        problem: "is malformed",
        expected: ACCOUNT_SHAPE,
      });
    }
    const events = Array.isArray(o.events) ? accountEvents(key, o.events) : defaultEvents;
    perAccount.set(account, target(key, o.url, o.secret, events));
  }
  return perAccount;
}

export function loadDeliveryConfig(env: SettingsEnv): DeliveryConfig {
  const records = readSettings(DELIVERY_RECORDS_SETTINGS, env);
  const hooks = readSettings(DELIVERY_WEBHOOK_SETTINGS, env);
  const defaultEvents: ReadonlySet<TranscriptEventType> = new Set(hooks.WEBHOOK_EVENTS);
  if (hooks.WEBHOOK_URL !== undefined && hooks.WEBHOOK_SECRET === undefined) {
    throw new SettingError({
      setting: "WEBHOOK_SECRET",
      value: undefined,
      expected: "a secret of at least 16 characters to sign WEBHOOK_URL's requests with",
    });
  }
  const fallback =
    hooks.WEBHOOK_URL !== undefined
      ? { url: hooks.WEBHOOK_URL, secret: hooks.WEBHOOK_SECRET ?? "", events: defaultEvents }
      : undefined;
  const perAccount = hooks.WEBHOOK_ACCOUNTS ? webhookAccounts(hooks.WEBHOOK_ACCOUNTS, defaultEvents) : new Map();
  return {
    recordsFlushFinals: records.RECORDS_FLUSH_FINALS,
    recordsFlushMs: records.RECORDS_FLUSH_MS,
    recordsRetryMinMs: records.RECORDS_RETRY_MIN_MS,
    recordsRetryMaxMs: records.RECORDS_RETRY_MAX_MS,
    webhookFor: (accountSid) => (perAccount.has(accountSid) ? perAccount.get(accountSid) : fallback),
    webhookRetryMinMs: hooks.WEBHOOK_RETRY_MIN_MS,
    webhookRetryMaxMs: hooks.WEBHOOK_RETRY_MAX_MS,
    webhookTimeoutMs: hooks.WEBHOOK_TIMEOUT_MS,
    webhookOutboxMax: hooks.WEBHOOK_OUTBOX_MAX,
    webhookGiveUpMs: hooks.WEBHOOK_GIVE_UP_MS,
  };
}
