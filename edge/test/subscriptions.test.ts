/**
 * Agent subscriptions on real workerd: `GET /calls/{CallSid}/events` and `GET /events` as
 * WebSockets, their token check, replay with `?since=`, and flow control — a subscriber that
 * reads slowly never slows the call or the others, loses only partials, and is closed (4008)
 * rather than lose a final. The runner is real and transcribes with the WordEngine.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_TOKEN, TwilioCall, sleep, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { Subscriber, WordEngine, refusedUpgrade, startTranscribingRunner, wordOf } from "./transcripts.js";

/** A CallSid in Twilio's format that no call uses. */
const NO_CALL = "CA" + "0".repeat(32);

/** Small bounds so a test can fill them: 2 events in flight, 6 waiting. */
const WINDOW = 2;
const BUFFER = 6;

let runner: Awaited<ReturnType<typeof startTranscribingRunner>>;
let edge: TestEdge;
const engine = new WordEngine(5);

beforeAll(async () => {
  runner = await startTranscribingRunner(engine);
  edge = await startTestEdge({
    RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
    SUBSCRIBER_WINDOW: String(WINDOW),
    SUBSCRIBER_BUFFER: String(BUFFER),
  });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

/** The words of `blocks` 100 ms blocks, as the finals should read when joined. */
function allWords(blocks: number): string {
  return Array.from({ length: blocks }, (_, i) => wordOf(i)).join(" ");
}

function finalText(s: Subscriber, callSid: string): string {
  return s
    .of("final", callSid)
    .map((e) => e.text.replace(/\.$/, ""))
    .join(" ");
}

describe("auth", () => {
  it("refuses a subscriber without a token or with a wrong one (401), by header or ?token=", async () => {
    const statuses = [
      await refusedUpgrade(edge, "/events"),
      await refusedUpgrade(edge, "/events?token=wrong"),
      await refusedUpgrade(edge, "/events", { Authorization: "Bearer wrong" }),
      await refusedUpgrade(edge, `/calls/${NO_CALL}/events`),
      await refusedUpgrade(edge, `/calls/${NO_CALL}/events?token=wrong`),
      await refusedUpgrade(edge, `/calls/${NO_CALL}/events`, { Authorization: "Bearer wrong" }),
    ];
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401]);
    expect((await fetch(`${edge.url}/calls/${NO_CALL}/events`)).status).toBe(401);
    // the right token, either way, is let in
    const byQuery = await Subscriber.connect(edge, `/events?token=${API_TOKEN}`, { headers: {} });
    byQuery.close();
  });
});

describe("streams", () => {
  it("gives a call's subscriber its events in order, numbered, then closes when the call ends", async () => {
    const call = await TwilioCall.start(edge);
    const sub = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
    // 1.1 s: 11 blocks; finals at blocks 4 and 9, the last one when the call ends
    expect(await call.play(testAudio(55), { speed: 4 })).toBe(55);
    expect(await call.hangUp()).toBe(1000);
    expect(await sub.closed).toBe(1000);
    const types = sub.events.map((r) => r.e.type);
    expect(types[0]).toBe("call.started");
    expect(types.at(-1)).toBe("call.ended");
    expect(sub.of("call.ended")).toHaveLength(1);
    expect(sub.events.map((r) => r.e.n)).toEqual(sub.events.map((_, i) => i + 1));
    expect(finalText(sub, call.callSid)).toBe(allWords(11));
    expect(sub.of("final").map((e) => e.utteranceId)).toEqual([1, 2, 3].map((n) => `${call.callSid}:u${n}`));
    // the JSON view holds the same events
    const held = (await (
      await fetch(`${edge.url}/calls/${call.callSid}/events`, { headers: { Authorization: `Bearer ${API_TOKEN}` } })
    ).json()) as { events: any[] };
    expect(held.events).toEqual(sub.events.map((r) => r.e));
  });

  it("replays what the call still holds after ?since=n", async () => {
    const call = await TwilioCall.start(edge);
    expect(await call.play(testAudio(50, 2), { speed: 4 })).toBe(50);
    expect(await call.hangUp()).toBe(1000);
    const all = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
    await all.closed;
    const late = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=3`);
    await late.closed;
    expect(all.events.length).toBeGreaterThan(5);
    expect(late.events.map((r) => r.e)).toEqual(all.events.slice(3).map((r) => r.e));
  });

  it("gives an /events subscriber the events of two calls of the account", async () => {
    const sub = await Subscriber.connect(edge, "/events");
    const [a, b] = [await TwilioCall.start(edge), await TwilioCall.start(edge)];
    await Promise.all([a.play(testAudio(50, 3), { speed: 4 }), b.play(testAudio(50, 4), { speed: 4 })]);
    await Promise.all([a.hangUp(), b.hangUp()]);
    await waitFor("call.ended of both calls", () => sub.of("call.ended").length >= 2);
    for (const call of [a, b]) {
      expect(sub.of("call.started", call.callSid)).toHaveLength(1);
      expect(finalText(sub, call.callSid)).toBe(allWords(10));
      expect(sub.of("call.ended", call.callSid)).toHaveLength(1);
    }
    sub.close();
  });
});

describe("flow control", () => {
  it("a slow subscriber loses partials, never finals, and slows neither the call nor a fast subscriber", async () => {
    const call = await TwilioCall.start(edge);
    // ?since=0: from the call's first event, whatever arrived before the socket opened
    const fast = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
    const slow = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`, { ack: "manual" });
    const playing = call.play(testAudio(150, 5), { speed: 2 }); // 3 s of audio: 30 blocks, 6 finals
    // the slow one reads a little every 600 ms
    const reading = (async () => {
      while (slow.closeCode === undefined) {
        await sleep(600);
        slow.ackAll();
      }
    })();
    expect(await playing).toBe(150);
    expect(await call.hangUp()).toBe(1000);
    await Promise.all([fast.closed, slow.closed, reading]);

    // the call: every block acked to Twilio and every sample at the engine's runner
    const acks = call.events("mark").filter((m) => m.mark?.name.startsWith("ozen-ack:"));
    expect(acks).toHaveLength(30);
    const s = await edge.callStats(call.callSid);
    expect(s.relay).toMatchObject({ blocksAcked: 30, blocksDropped: 0, lostAtEnd: 0 });
    // the fast subscriber: everything, numbered 1..N with no hole
    expect(fast.events.map((r) => r.e.n)).toEqual(fast.events.map((_, i) => i + 1));
    expect(finalText(fast, call.callSid)).toBe(allWords(30));
    // the slow one: every final and the end, fewer partials, counted
    expect(slow.closeCode).toBe(1000);
    expect(finalText(slow, call.callSid)).toBe(allWords(30));
    expect(slow.of("call.ended")).toHaveLength(1);
    const slowPartials = slow.of("partial").length;
    expect(slowPartials).toBeLessThan(fast.of("partial").length);
    const list = s.eventStream!.subscribers.list;
    const [fastStats, slowStats] = [list.find((x) => x.id === 1)!, list.find((x) => x.id === 2)!];
    expect(fastStats.dropped).toEqual({});
    expect(slowStats.dropped["partial"]! + (slowStats.dropped["meaningful"] ?? 0)).toBe(
      fast.events.length - slow.events.length,
    );
    expect(s.eventStream!.subscribers.dropped["partial"]).toBe(slowStats.dropped["partial"]);
  });

  it("closes a subscriber that falls behind on finals with 4008 and a reason; it resumes with ?since=", async () => {
    const call = await TwilioCall.start(edge);
    const stuck = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`, { ack: "manual" });
    const playing = call.play(testAudio(200, 6), { speed: 2 }); // 40 blocks, 8 finals
    expect(await stuck.closed).toBe(4008);
    expect(stuck.closeReason).toMatch(/^too slow: \d+ finals pending; resume from records$/);
    const lastN = stuck.events.at(-1)!.e.n as number;
    expect(stuck.events).toHaveLength(WINDOW); // it never acknowledged: only the window went out
    const resumed = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=${lastN}`);
    expect(await playing).toBe(200);
    expect(await call.hangUp()).toBe(1000);
    expect(await resumed.closed).toBe(1000);
    const finals = [...stuck.of("final"), ...resumed.of("final")].map((e) => e.text.replace(/\.$/, ""));
    expect(finals.join(" ")).toBe(allWords(40));
    const s = await edge.callStats(call.callSid);
    expect(s.eventStream!.subscribers.closedTooSlow).toBe(1);
    expect(s.eventStream!.subscribers.list.find((x) => x.id === 1)!.closed).toMatch(/^4008 too slow/);
  });
});
