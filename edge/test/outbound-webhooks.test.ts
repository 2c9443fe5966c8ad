/**
 * Webhooks on real workerd: each call's events POSTed to a real HTTP server in this process,
 * signed, in order, at least once. The receiver fails (500s, then refused connections) and
 * recovers; everything arrives, in order, once it does, including after the call ended and after
 * the whole edge restarted on the same storage (the outbox and its alarm are durable).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newIdentity } from "../../tools/src/simulator.js";
import { startLocalEdge } from "../scripts/local-edge.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import {
  AUTH_TOKEN,
  API_TOKEN,
  PUBLIC_BASE_URL,
  RELAY_SECRET,
  TwilioCall,
  sleep,
  startTestEdge,
  testAudio,
  waitFor,
} from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { WebhookReceiver, apiJson, signatureValid, startTalkingRunner } from "./transcribing.js";
import type { Received, TalkingRunner } from "./transcribing.js";

const SECRET = "webhook-secret-0123456789";
const PARTIALS_SECRET = "other-secret-0123456789";
const PARTIALS_ACCOUNT = "AC" + "1".repeat(32);

let runner: TalkingRunner;
let receiver: WebhookReceiver;
let partialsReceiver: WebhookReceiver;
let edge: TestEdge;

const retries = { WEBHOOK_RETRY_MIN_MS: "50", WEBHOOK_RETRY_MAX_MS: "400" };

beforeAll(async () => {
  runner = await startTalkingRunner(undefined, RELAY_SECRET);
  receiver = await WebhookReceiver.start();
  partialsReceiver = await WebhookReceiver.start();
  edge = await startTestEdge({
    RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_ACCOUNTS: JSON.stringify({
      [PARTIALS_ACCOUNT]: { url: partialsReceiver.url, secret: PARTIALS_SECRET, events: ["partial", "final"] },
    }),
    ...retries,
  });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
  await receiver?.close();
  await partialsReceiver?.close();
});

async function talk(target: TestEdge, seconds: number, accountSid?: string): Promise<TwilioCall> {
  const call = await TwilioCall.start(target, accountSid ? { identity: { ...newIdentity(), accountSid } } : {});
  await call.play(testAudio(seconds * 50), { speed: 4 });
  await call.hangUp();
  return call;
}

function forCall(r: WebhookReceiver, callSid: string): Received[] {
  return r.requests.filter((q) => JSON.parse(q.body).event.callSid === callSid);
}

/** The accepted deliveries of a call, one per Idempotency-Key (the first), in arrival order. */
function deduped(reqs: Received[]): any[] {
  const seen = new Set<string>();
  const out: any[] = [];
  for (const q of reqs) {
    const key = String(q.headers["idempotency-key"]);
    if (q.status !== 200 || seen.has(key)) continue;
    seen.add(key);
    out.push(JSON.parse(q.body));
  }
  return out;
}

/** The call's events as its object recorded them (the webhook's default types). */
async function timeline(target: TestEdge, callSid: string): Promise<any[]> {
  return (await apiJson(target, `/calls/${callSid}/record`)).timeline.map((t: any) => t.event);
}

function expectOrderedSignedDeliveries(reqs: Received[], secret: string): void {
  const accepted = reqs.filter((q) => q.status === 200);
  for (const q of reqs) {
    expect(signatureValid(secret, q), "signature").toBe(true);
    const body = JSON.parse(q.body);
    expect(q.headers["idempotency-key"]).toBe(`${body.event.callSid}:${body.seq}`);
    expect(body.id).toBe(q.headers["idempotency-key"]);
    expect(q.headers["x-ozen-event"]).toBe(body.event.type);
    expect(Math.abs(Number(q.headers["x-ozen-timestamp"]) * 1000 - q.atMs)).toBeLessThan(5000);
  }
  // in order: each accepted delivery's seq is at least the one before
  const seqs = accepted.map((q) => JSON.parse(q.body).seq as number);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
}

describe("webhooks", () => {
  it("a receiver answering 500 for a while gets every event once it recovers: in order, signed, deduplicated by key", async () => {
    receiver.mode = "fail";
    const call = await talk(edge, 2);
    await waitFor("a few failed attempts", () => forCall(receiver, call.callSid).length >= 5);
    await sleep(500);
    const recoveredAt = Date.now();
    await receiver.recover();
    await waitFor("call.ended delivered", () =>
      deduped(forCall(receiver, call.callSid)).some((b) => b.event.type === "call.ended"),
    );
    const recoveryMs = Date.now() - recoveredAt;
    const reqs = forCall(receiver, call.callSid);
    expect(reqs.some((q) => q.status === 500)).toBe(true);
    expectOrderedSignedDeliveries(reqs, SECRET);
    const got = deduped(reqs);
    expect(got.map((b) => b.event)).toEqual(await timeline(edge, call.callSid));
    expect(got.map((b) => b.event.type)).toEqual(["call.started", ...Array(5).fill("final"), "call.ended"]);
    expect(got.map((b) => b.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(got.every((b) => b.accountSid === call.identity.accountSid)).toBe(true);
    const view = await apiJson(edge, `/calls/${call.callSid}/record`);
    expect(view.webhook).toMatchObject({ waiting: 0, failures: 0 });
    console.log(JSON.stringify({ figure: "webhook_recovery_ms", after: "500s", recoveryMs, events: got.length }));
  });

  it("connections refused through the end of the call: the outbox drains after the call ended", async () => {
    await receiver.refuse();
    const call = await talk(edge, 1.2);
    await waitFor("the call ended with its events waiting", async () => {
      const v = await apiJson(edge, `/calls/${call.callSid}/record`);
      return v.call.status === "ended" && v.webhook.waiting === 5 && v.webhook.failures >= 2;
    });
    await sleep(800);
    expect(forCall(receiver, call.callSid)).toEqual([]);
    const recoveredAt = Date.now();
    await receiver.recover();
    await waitFor("call.ended delivered", () =>
      deduped(forCall(receiver, call.callSid)).some((b) => b.event.type === "call.ended"),
    );
    const recoveryMs = Date.now() - recoveredAt;
    const reqs = forCall(receiver, call.callSid);
    expectOrderedSignedDeliveries(reqs, SECRET);
    expect(deduped(reqs).map((b) => b.event)).toEqual(await timeline(edge, call.callSid));
    console.log(JSON.stringify({ figure: "webhook_recovery_ms", after: "refused", recoveryMs }));
  });

  it("sends no partials by default; an account's WEBHOOK_ACCOUNTS entry picks its own URL, secret and types", async () => {
    const call = await talk(edge, 1.2, PARTIALS_ACCOUNT);
    const plain = await talk(edge, 1.2);
    await waitFor(
      "3 finals at the account's receiver",
      () => deduped(forCall(partialsReceiver, call.callSid)).filter((b) => b.event.type === "final").length === 3,
    );
    await waitFor("the other call's call.ended", () =>
      deduped(forCall(receiver, plain.callSid)).some((b) => b.event.type === "call.ended"),
    );
    const got = deduped(forCall(partialsReceiver, call.callSid));
    expect(new Set(got.map((b) => b.event.type))).toEqual(new Set(["partial", "final"]));
    expectOrderedSignedDeliveries(forCall(partialsReceiver, call.callSid), PARTIALS_SECRET);
    expect(forCall(receiver, call.callSid)).toEqual([]);
    expect(deduped(forCall(receiver, plain.callSid)).some((b) => b.event.type === "partial")).toBe(false);
  });
});

describe("the outbox and the D1 backlog across a restart of the edge", () => {
  let dir: string;
  let local: LocalEdge | undefined;
  let hook: WebhookReceiver;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ozen-outbox-"));
    hook = await WebhookReceiver.start();
  });

  afterAll(async () => {
    await local?.close();
    await hook?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const start = () =>
    startLocalEdge({
      verbose: false,
      persistDir: dir,
      vars: {
        PUBLIC_BASE_URL,
        TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        API_TOKEN,
        RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
        RELAY_SECRET,
        WEBHOOK_URL: hook.url,
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_EVENTS: "call.started,partial,final,call.ended",
        WEBHOOK_OUTBOX_MAX: "8",
        ...retries,
      },
    });

  it("keeps the bound by dropping the oldest partials; after workerd restarts, delivers the rest and writes D1", async () => {
    local = await start();
    const asTest = { url: local.url } as TestEdge;
    await hook.refuse();
    // D1 fails too (see records.test.ts): the finals wait in the object across the restart
    await (await local.d1()).prepare("ALTER TABLE utterances RENAME TO utterances_away").run();
    const call = await talk(asTest, 2);
    const before = await waitFor("the ended call's outbox", async () => {
      const v = await apiJson(asTest, `/calls/${call.callSid}/record`);
      return v.call.status === "ended" && v.webhook.failures >= 1 ? v : undefined;
    });
    expect(before.webhook.waiting).toBe(8);
    const partials = before.call.counters.partial as number;
    const dropped = before.call.counters.webhookDroppedPartials as number;
    expect(dropped).toBe(partials + 5 + 2 - 8);
    // a new workerd on the same storage: the object's alarm wakes it to send the outbox
    await local.close();
    local = undefined;
    await hook.recover();
    local = await start();
    const db = await local.d1();
    await db.prepare("ALTER TABLE utterances_away RENAME TO utterances").run();
    await waitFor(
      "call.ended delivered after the restart",
      () => deduped(forCall(hook, call.callSid)).some((b) => b.event.type === "call.ended"),
      20_000,
    );
    await waitFor(
      "the call's 5 finals and its end in D1 after the restart",
      async () =>
        (await db
          .prepare(
            "SELECT count(*) AS n FROM utterances u JOIN calls c USING (call_sid) WHERE call_sid = ? AND c.status = 'ended'",
          )
          .bind(call.callSid)
          .first<{ n: number }>())!.n === 5,
      20_000,
    );
    const got = deduped(forCall(hook, call.callSid));
    expectOrderedSignedDeliveries(forCall(hook, call.callSid), SECRET);
    expect(got.filter((b) => b.event.type === "final")).toHaveLength(5);
    expect(got.filter((b) => b.event.type === "partial")).toHaveLength(partials - dropped);
    expect(got[0].event.type).toBe("call.started");
    expect(got.at(-1).event.type).toBe("call.ended");
    // what is missing are the oldest partials: every seq missing is below every partial delivered
    const seqs = new Set(got.map((b) => b.seq as number));
    const missing = Array.from({ length: got.at(-1).seq as number }, (_, i) => i + 1).filter((n) => !seqs.has(n));
    expect(missing).toHaveLength(dropped);
    const partialSeqs = got.filter((b) => b.event.type === "partial").map((b) => b.seq as number);
    if (partialSeqs.length > 0) expect(Math.max(...missing)).toBeLessThan(Math.min(...partialSeqs));
  });
});

describe("a receiver that never recovers", () => {
  let quick: TestEdge;
  let dead: WebhookReceiver;

  beforeAll(async () => {
    dead = await WebhookReceiver.start();
    await dead.refuse();
    quick = await startTestEdge({
      RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
      WEBHOOK_URL: dead.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_GIVE_UP_MS: "1500",
      ...retries,
    });
  });

  afterAll(async () => {
    await quick?.close();
    await dead?.close();
  });

  it("loses the call's waiting events after WEBHOOK_GIVE_UP_MS, counts them and logs an error; the records keep the finals", async () => {
    const call = await talk(quick, 1.2);
    const view = await waitFor("the outbox given up", async () => {
      const v = await apiJson(quick, `/calls/${call.callSid}/record`);
      return v.call.status === "ended" && v.webhook.waiting === 0 ? v : undefined;
    });
    expect(view.call.counters.webhookGivenUp).toBe(5);
    expect(view.call.counters.webhookDelivered ?? 0).toBe(0);
    expect(view.utterances).toHaveLength(3);
    const line = await waitFor("the error line", () =>
      quick.logs.find((l) => l.includes("webhook receiver failed for too long")),
    );
    expect(JSON.parse(line)).toMatchObject({ level: "error", dropped: 5, callSid: call.callSid });
  });
});
