/** The client's pure parts: events (typed, unknown passed through, never a throw) and webhooks. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WebhookVerificationError, parseEvent, signWebhook, verifyWebhook } from "../src/index.js";

const SID = "CA" + "0".repeat(32);
const BASE = { v: 1, callSid: SID, wallMs: 1_796_000_000_000 };

describe("parseEvent", () => {
  it("types a v1 event and keeps its stream number", () => {
    const e = parseEvent({
      ...BASE,
      type: "barge_in",
      policy: "speech",
      playId: "t",
      speechAudioMs: 5,
      audioMs: 9,
      n: 4,
    });
    expect(e).toMatchObject({ type: "barge_in", policy: "speech", n: 4 });
  });

  it("passes an unknown type or a bad field through as unknown, raw", () => {
    expect(parseEvent({ ...BASE, type: "sentiment", score: 1, n: 2 })).toMatchObject({
      type: "unknown",
      eventType: "sentiment",
      n: 2,
      raw: { score: 1 },
    });
    expect(parseEvent({ ...BASE, type: "speech.started", audioMs: "soon" })).toMatchObject({
      type: "unknown",
      eventType: "speech.started",
      problem: expect.stringContaining("audioMs"),
    });
  });

  it("never throws, whatever the value", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue(), fc.record({ v: fc.constant(1), type: fc.string(), n: fc.jsonValue() })),
        (v) => {
          parseEvent(v);
        },
      ),
    );
  });
});

describe("verifyWebhook", () => {
  const NOW = 1_796_000_000;
  const body = JSON.stringify({
    id: `${SID}:3`,
    seq: 3,
    accountSid: "AC" + "0".repeat(32),
    event: { ...BASE, type: "call.ended", reason: "twilio stop" },
  });
  const headers = async (ts = NOW, secret = "s3cret") => ({
    "x-ozen-timestamp": String(ts),
    "x-ozen-signature": await signWebhook(secret, ts, body),
  });

  it("returns the delivery with its typed event, from a plain object or Headers, string or bytes", async () => {
    const d = await verifyWebhook(await headers(), body, "s3cret", { nowS: NOW });
    expect(d).toMatchObject({ seq: 3, event: { type: "call.ended", reason: "twilio stop" } });
    const h = new Headers(await headers());
    expect((await verifyWebhook(h, new TextEncoder().encode(body), "s3cret", { nowS: NOW })).seq).toBe(3);
  });

  it("refuses a wrong secret, a changed body, an old timestamp, a missing header", async () => {
    const refused = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(WebhookVerificationError);
    await refused(verifyWebhook(await headers(NOW, "other"), body, "s3cret", { nowS: NOW }));
    await refused(verifyWebhook(await headers(), body.replace("stop", "Stop"), "s3cret", { nowS: NOW }));
    await refused(verifyWebhook(await headers(NOW - 301), body, "s3cret", { nowS: NOW }));
    await refused(verifyWebhook({ "x-ozen-timestamp": String(NOW) }, body, "s3cret", { nowS: NOW }));
  });
});
