/**
 * The pure pieces of records and webhooks: the retry backoff, the webhook signature (checked
 * against node:crypto), the delivery settings, and how migration files are split.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { loadDeliveryConfig } from "../src/records/delivery-config.js";
import { backoffMs, signWebhook } from "../src/records/webhooks.js";
import { statementsOf } from "../scripts/d1-migrations.js";

function config(env: Record<string, string>) {
  return loadDeliveryConfig(env);
}

describe("backoffMs", () => {
  it("doubles from the minimum per failure and stops at the cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n, 1000, 30_000, 0.5))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
  });

  it("jitters by at most 20% and never past the cap", () => {
    expect(backoffMs(3, 1000, 60_000, 0)).toBe(3200);
    expect(backoffMs(3, 1000, 60_000, 0.999)).toBe(4798);
    expect(backoffMs(40, 1000, 60_000, 0.999)).toBe(60_000);
  });
});

describe("signWebhook", () => {
  it("is v1= and the hex HMAC-SHA256 of timestamp.body, as node:crypto computes it", async () => {
    const body = JSON.stringify({ id: "CA1:1", seq: 1, text: "שלום עולם" });
    const want = createHmac("sha256", "s3cret-s3cret-s3cret").update(`1795700000.${body}`).digest("hex");
    expect(await signWebhook("s3cret-s3cret-s3cret", 1795700000, body)).toBe(`v1=${want}`);
  });
});

describe("delivery settings", () => {
  it("has no webhook without WEBHOOK_URL, and default D1 timings", () => {
    const c = config({});
    expect(c.webhookFor("AC1")).toBeUndefined();
    expect([c.recordsFlushFinals, c.recordsFlushMs, c.recordsRetryMinMs, c.recordsRetryMaxMs]).toEqual([
      10, 5000, 1000, 60_000,
    ]);
  });

  it("sends finals and call events by default, no partials", () => {
    const t = config({ WEBHOOK_URL: "https://hooks.example/x", WEBHOOK_SECRET: "0123456789abcdef" }).webhookFor("AC1");
    expect([...t!.events].sort()).toEqual(["call.ended", "call.started", "engine.switched", "final"]);
  });

  it("gives an account in WEBHOOK_ACCOUNTS its own target, and none for null", () => {
    const c = config({
      WEBHOOK_URL: "https://hooks.example/all",
      WEBHOOK_SECRET: "0123456789abcdef",
      WEBHOOK_ACCOUNTS: JSON.stringify({
        AC2: { url: "https://hooks.example/two", secret: "fedcba9876543210", events: ["partial"] },
        AC3: null,
      }),
    });
    expect(c.webhookFor("AC1")?.url).toBe("https://hooks.example/all");
    expect(c.webhookFor("AC2")).toMatchObject({ url: "https://hooks.example/two", secret: "fedcba9876543210" });
    expect([...c.webhookFor("AC2")!.events]).toEqual(["partial"]);
    expect(c.webhookFor("AC3")).toBeUndefined();
  });

  it("refuses an unknown event type, a short secret and a URL that is not http(s)", () => {
    const base = { WEBHOOK_URL: "https://hooks.example/x", WEBHOOK_SECRET: "0123456789abcdef" };
    expect(() => config({ ...base, WEBHOOK_EVENTS: "final,finals" })).toThrow(
      /^WEBHOOK_EVENTS is "final,finals", which names "finals", expected .*call\.started, partial, meaningful, final/,
    );
    expect(() => config({ ...base, WEBHOOK_SECRET: "short" })).toThrow(
      "WEBHOOK_SECRET is a secret of 5 characters, expected a secret of at least 16 characters",
    );
    expect(() => config({ ...base, WEBHOOK_URL: "ftp://x" })).toThrow(
      'WEBHOOK_URL is "ftp://x", expected a URL starting https:// or http://',
    );
    expect(() => config({ WEBHOOK_ACCOUNTS: "{" })).toThrow(/^WEBHOOK_ACCOUNTS is not JSON, expected \{"AC\.\.\."/);
  });
});

describe("statementsOf", () => {
  it("drops comments and splits at semicolons that end a line", () => {
    expect(
      statementsOf("-- a table\nCREATE TABLE a (x TEXT, -- why\n y INTEGER);\n\nCREATE INDEX i ON a (x);\n"),
    ).toEqual(["CREATE TABLE a (x TEXT, \n y INTEGER)", "CREATE INDEX i ON a (x)"]);
  });
});
