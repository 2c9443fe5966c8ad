/**
 * Webhook requests (adapter): one transcript event per POST, signed, with the headers a receiver
 * needs to verify, order and deduplicate it. Delivery order, retries and the outbox are the
 * caller's (`ledger.ts`); this module builds, signs and sends one request.
 *
 * Headers:
 * - `X-Ozen-Timestamp`: Unix seconds when this attempt was signed;
 * - `X-Ozen-Signature`: `v1=` + hex HMAC-SHA256 with the account's secret over
 *   `${timestamp}.${body}` (reject old timestamps to refuse replays);
 * - `Idempotency-Key`: `${callSid}:${seq}`, the same on every attempt of the same event;
 * - `X-Ozen-Event`: the event type; `X-Ozen-Attempt`: 1, 2, ...
 */
import type { TranscriptEvent } from "@ozen/shared";

/** The JSON body of a webhook: the event, and where it stands in the call's sequence. */
export interface WebhookBody {
  /** `${callSid}:${seq}`, equal to the Idempotency-Key header. */
  readonly id: string;
  /** 1, 2, ... per call, in the order events happened (gaps: events dropped past the bound). */
  readonly seq: number;
  readonly accountSid: string;
  readonly event: TranscriptEvent;
}

export function webhookBody(accountSid: string, seq: number, event: TranscriptEvent): string {
  const body: WebhookBody = { id: `${event.callSid}:${seq}`, seq, accountSid, event };
  return JSON.stringify(body);
}

const encoder = new TextEncoder();

function hex(buf: ArrayBuffer): string {
  let s = "";
  for (const b of new Uint8Array(buf)) s += b.toString(16).padStart(2, "0");
  return s;
}

/** `v1=<hex HMAC-SHA256(secret, `${timestampS}.${body}`)>`. */
export async function signWebhook(secret: string, timestampS: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return "v1=" + hex(await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestampS}.${body}`)));
}

/** Outcome of one attempt; `detail` names the failure without the body (it holds transcript text). */
export type AttemptResult = { ok: true; status: number } | { ok: false; detail: string };

/** POSTs one event. Never throws: network errors and timeouts are failed attempts. */
export async function postWebhook(o: {
  url: string;
  secret: string;
  idempotencyKey: string;
  type: string;
  attempt: number;
  body: string;
  timeoutMs: number;
  nowMs: number;
}): Promise<AttemptResult> {
  const timestampS = Math.floor(o.nowMs / 1000);
  try {
    const res = await fetch(o.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "User-Agent": "ozen-webhooks/1",
        "X-Ozen-Timestamp": String(timestampS),
        "X-Ozen-Signature": await signWebhook(o.secret, timestampS, o.body),
        "Idempotency-Key": o.idempotencyKey,
        "X-Ozen-Event": o.type,
        "X-Ozen-Attempt": String(o.attempt),
      },
      body: o.body,
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    // the body is not needed; cancel it so the connection is released
    await res.body?.cancel();
    return res.ok ? { ok: true, status: res.status } : { ok: false, detail: `HTTP ${res.status}` };
  } catch (e) {
    const name = e instanceof Error ? e.name : "";
    return { ok: false, detail: name === "TimeoutError" ? `no answer in ${o.timeoutMs} ms` : String(e).slice(0, 200) };
  }
}

/**
 * Delay before attempt `failures + 1`, ms: `minMs * 2^(failures-1)`, capped at `maxMs`, with
 * +-20% jitter (`random` in [0, 1)) so many calls failing together do not retry in step.
 */
export function backoffMs(failures: number, minMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(Math.min(maxMs, base * (0.8 + 0.4 * random)));
}
