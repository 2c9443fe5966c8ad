/**
 * Admission by capacity behind a real front end: three runner processes of OZEN_MAX_CALLS 2
 * behind HAProxy (health checks on `/readyz`, which answers 503 while an instance is full), the
 * edge on workerd with RUNNER_URL at the balancer, eight calls: six are transcribed at once, the
 * other two wait (refused 4007 by a full runner, or 503 by the front end when every runner is
 * marked full), their agents get `engine.switched` to `none` (reason `capacity`), and once calls
 * end they are admitted (`engine.switched` from `none`, reason `admitted`) and transcribed whole:
 * every word of their audio once, in order, nothing lost while they waited.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TwilioCall, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { haproxyPath, startBalancer } from "./balancer.js";
import type { Balancer } from "./balancer.js";
import { Subscriber, wordOf } from "./transcripts.js";

const haproxy = haproxyPath();
if (!haproxy) console.warn("HAProxy is not installed (apt-get install haproxy): the load-balancer tests are skipped");

let balancer: Balancer;
let edge: TestEdge;

beforeAll(async () => {
  balancer = await startBalancer(haproxy!, { runners: 3, maxCalls: 2, balance: "leastconn" });
  edge = await startTestEdge({ RUNNER_URL: balancer.url, RELAY_CAPACITY_NOTICE_MS: "500" });
}, 90_000);

afterAll(async () => {
  await edge?.close();
  await balancer?.close();
});

/** The words of `frames` Twilio frames (20 ms) of audio: one per 100 ms block. */
function wordsOf(frames: number): string {
  return Array.from({ length: frames / 5 }, (_, i) => wordOf(i)).join(" ");
}

const transcript = (sub: Subscriber) =>
  sub
    .of("final")
    .map((e) => e.text.replace(/\.$/, ""))
    .join(" ");

describe.skipIf(!haproxy)("three runners of capacity 2 behind HAProxy", () => {
  it("transcribes six calls at once; two wait, are told so, and are admitted whole as calls end", async () => {
    const t0 = Date.now();
    const at = (ms: number) => ms - t0;
    const held = () => balancer.runners.map((r) => r.holding().size);
    // six calls of 3 s (30 blocks, 6 finals each)
    const first = await Promise.all(Array.from({ length: 6 }, () => TwilioCall.start(edge)));
    const firstSubs = await Promise.all(
      first.map((c) => Subscriber.connect(edge, `/calls/${c.callSid}/events?since=0`)),
    );
    const firstPlays = first.map((c) => c.play(testAudio(150, 3), { speed: 1 }));
    await waitFor("six sessions open, two per runner", () => held().every((n) => n === 2));
    const sixAtMs = Date.now();
    // two more while every runner is full: 5 s of audio each, still streaming when slots free
    const late = await Promise.all(Array.from({ length: 2 }, () => TwilioCall.start(edge)));
    const lateSubs = await Promise.all(late.map((c) => Subscriber.connect(edge, `/calls/${c.callSid}/events?since=0`)));
    const latePlays = late.map((c) => c.play(testAudio(250, 5), { speed: 1 }));
    const lateStartMs = Date.now();
    await waitFor("the waiting calls' agents told no runner has room", () =>
      lateSubs.every((s) => s.of("engine.switched").some((e) => e.to === "none" && e.reason === "capacity")),
    );
    const noticeMs = Date.now();
    // nobody holds more than its capacity, and the late calls are nowhere yet
    expect(held()).toEqual([2, 2, 2]);
    for (const c of late) expect(balancer.holder(c.callSid)).toBeUndefined();

    expect(await Promise.all(firstPlays)).toEqual(Array(6).fill(150));
    const hangUpMs = Date.now();
    for (const c of first) expect(await c.hangUp()).toBe(1000);
    const firstEndMs = Date.now();
    await waitFor(
      "the waiting calls admitted",
      () => lateSubs.every((s) => s.of("engine.switched").some((e) => e.from === "none" && e.reason === "admitted")),
      15_000,
    );
    const admittedMs = Date.now();
    expect(await Promise.all(latePlays)).toEqual([250, 250]);
    for (const c of late) expect(await c.hangUp()).toBe(1000);
    for (const s of [...firstSubs, ...lateSubs]) expect(await s.closed).toBe(1000);

    // every call whole: each word once, in order (the late ones' audio kept while they waited)
    for (const s of firstSubs) expect(transcript(s)).toBe(wordsOf(150));
    for (const s of lateSubs) expect(transcript(s)).toBe(wordsOf(250));
    for (const c of late) {
      const stats = await edge.callStats(c.callSid);
      expect(stats.relay).toMatchObject({ blocksDropped: 0, blocksEvicted: 0, lostAtEnd: 0 });
      // the agent's events for the wait: to none, then from none, in that order, once each
      const switched = lateSubs[late.indexOf(c)]!.of("engine.switched");
      expect(switched.map((e) => [e.from, e.to, e.reason])).toEqual([
        ["none", "none", "capacity"],
        ["none", "words", "admitted"],
      ]);
    }
    // each runner held at most 2 at any time
    for (const r of balancer.runners) {
      let n = 0;
      for (const l of r.lines) {
        if (l.ev === "session_opened") n++;
        if (l.ev === "session_closed") n--;
        expect(n).toBeLessThanOrEqual(2);
      }
    }
    console.log(
      JSON.stringify({
        figure: "admission_timeline_ms",
        sixOpen: at(sixAtMs),
        lateCallsStarted: at(lateStartMs),
        capacityNotice: at(noticeMs),
        firstSixHungUp: at(hangUpMs),
        firstSixEnded: at(firstEndMs),
        lateAdmitted: at(admittedMs),
        admittedAfterFirstHangUpMs: admittedMs - hangUpMs,
      }),
    );
  }, 90_000);
});
