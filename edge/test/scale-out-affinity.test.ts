/**
 * A network blip between the front end and a runner (HAProxy's runtime API cuts the call's
 * connection both ways; the runner stays up), with three runner processes behind HAProxy:
 * - no affinity (round robin): the edge's reconnect lands on another instance, which takes the
 *   call with a replay; the instance it left cannot be told, and closes the call's engine session
 *   at its engine grace (1 s after the drop), so within 1 s of the edge reconnecting elsewhere;
 * - affinity (HAProxy's sticky cookie, as Cloud Run's session affinity): the edge keeps the cookie
 *   the front end set on the upgrade and sends it on the reconnect, which lands on the same
 *   instance and resumes the same engine session (one session for the whole call, no block fed twice).
 */
import { afterEach, describe, expect, it } from "vitest";
import { TwilioCall, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { haproxyPath, startBalancer } from "./balancer.js";
import type { Balancer } from "./balancer.js";
import { Subscriber, wordOf } from "./transcripts.js";

const haproxy = haproxyPath();
if (!haproxy) console.warn("HAProxy is not installed (apt-get install haproxy): the load-balancer tests are skipped");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rig(sticky: boolean): Promise<{ balancer: Balancer; edge: TestEdge }> {
  const balancer = await startBalancer(haproxy!, { runners: 3, sticky });
  cleanups.push(() => balancer.close());
  const edge = await startTestEdge({ RUNNER_URL: balancer.url });
  cleanups.push(() => edge.close());
  return { balancer, edge };
}

const FRAMES = 250; // 5 s: 50 blocks, 10 finals
const words = Array.from({ length: FRAMES / 5 }, (_, i) => wordOf(i)).join(" ");
const transcript = (sub: Subscriber) =>
  sub
    .of("final")
    .map((e) => e.text.replace(/\.$/, ""))
    .join(" ");

/** A call that streams 5 s; once it has two finals, its connection through the balancer is cut. */
async function callWithBlip(balancer: Balancer, edge: TestEdge) {
  const call = await TwilioCall.start(edge);
  const sub = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
  const playing = call.play(testAudio(FRAMES, 9), { speed: 1 });
  await waitFor("two finals", () => sub.of("final").length >= 2);
  const first = balancer.holder(call.callSid)!;
  const cutAtMs = Date.now();
  await balancer.admin(`shutdown sessions server runners/${first.name}`);
  expect(await playing).toBe(FRAMES);
  expect(await call.hangUp()).toBe(1000);
  expect(await sub.closed).toBe(1000);
  return { call, sub, first, cutAtMs };
}

describe.skipIf(!haproxy)("a blip between the front end and a runner", () => {
  it("without affinity: the call moves with a replay, and the instance it left closes its session within 1 s", async () => {
    const { balancer, edge } = await rig(false);
    const { call, sub, first, cutAtMs } = await callWithBlip(balancer, edge);
    const other = balancer.runners.find((r) => r !== first && r.opened().some((l) => l.callSid === call.callSid))!;
    expect(other, "another instance took the call").toBeDefined();
    const reopenedAtMs = other.opened().find((l) => l.callSid === call.callSid)!.atMs;
    const closedAtMs = await waitFor(
      "the instance it left to close the call's session",
      () => first.closed().find((l) => l.callSid === call.callSid && l.atMs >= cutAtMs)?.atMs,
    );
    expect(closedAtMs - reopenedAtMs).toBeLessThan(1000);
    expect(transcript(sub)).toBe(words);
    const stats = await edge.callStats(call.callSid);
    expect(stats.relay).toMatchObject({ blocksDropped: 0, lostAtEnd: 0 });
    console.log(
      JSON.stringify({
        figure: "orphaned_session_ms",
        reconnectedElsewhereAfterCutMs: reopenedAtMs - cutAtMs,
        oldSessionClosedAfterCutMs: closedAtMs - cutAtMs,
        oldSessionClosedAfterReconnectMs: closedAtMs - reopenedAtMs,
      }),
    );
  }, 60_000);

  it("with affinity: the reconnect lands on the same instance and resumes its session, no block fed twice", async () => {
    const { balancer, edge } = await rig(true);
    const { call, sub, first, cutAtMs } = await callWithBlip(balancer, edge);
    // one engine session for the whole call, on the instance it started on
    const opened = balancer.runners.flatMap((r) =>
      r
        .opened()
        .filter((l) => l.callSid === call.callSid)
        .map(() => r),
    );
    expect(opened.map((r) => r.name)).toEqual([first.name]);
    expect(first.closed().filter((l) => l.callSid === call.callSid)).toHaveLength(1); // at the call's end
    expect(transcript(sub)).toBe(words);
    const stats = await edge.callStats(call.callSid);
    expect(stats.relay.connects).toBe(2);
    expect(stats.relay).toMatchObject({ blocksDropped: 0, lostAtEnd: 0 });
    console.log(
      JSON.stringify({
        figure: "affinity_blip",
        cutAtMs,
        connects: stats.relay.connects,
        blocksReplayed: stats.relay.blocksReplayed,
        sessions: opened.length,
      }),
    );
  }, 60_000);
});
