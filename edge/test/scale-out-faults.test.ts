/**
 * Many instances behind a real front end: three runner processes (the deterministic word engine)
 * behind Debian's HAProxy, the edge on workerd with RUNNER_URL at the balancer, `SCALE_CALLS`
 * calls (default 30) spread over them. A no-fault run gives each call's record; then
 * - `kill -9` one runner mid-call: its calls reconnect through the balancer to the others, replay
 *   what was not committed, and every final arrives exactly once: the records equal the no-fault
 *   run's, utterance by utterance;
 * - SIGTERM another: it sends `goaway`, its calls move before it exits, and their transcripts have
 *   no gap (finals contiguous in call audio) and equal the no-fault run's.
 * The figures (calls moved, transcript gap, finals lost or doubled, drain handover) are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestEdge } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { haproxyPath, startBalancer } from "./balancer.js";
import type { Balancer } from "./balancer.js";
import { compareRecords, contiguous, movedCalls, runCalls } from "./scale-out.js";
import type { RunOutcome } from "./scale-out.js";

const haproxy = haproxyPath();
if (!haproxy) console.warn("HAProxy is not installed (apt-get install haproxy): the load-balancer tests are skipped");
const CALLS = Number(process.env["SCALE_CALLS"] ?? 30);

let balancer: Balancer;
let edge: TestEdge;
let baseline: RunOutcome;

beforeAll(async () => {
  if (!haproxy) return;
  balancer = await startBalancer(haproxy, { runners: 3 });
  edge = await startTestEdge({ RUNNER_URL: balancer.url });
}, 90_000);

afterAll(async () => {
  await edge?.close();
  await balancer?.close();
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

describe.skipIf(!haproxy)(`${CALLS} calls over three runners behind HAProxy`, () => {
  it("spreads the calls over the three runners (the no-fault run)", async () => {
    baseline = await runCalls(edge, balancer, CALLS, "none");
    const per = balancer.runners.map((r) => new Set(r.opened().map((l) => l.callSid)).size);
    expect(per.reduce((a, b) => a + b)).toBe(CALLS);
    for (const n of per) expect(n).toBeGreaterThan(0);
    for (const c of baseline.calls) {
      expect(c.record.length).toBe(12);
      expect(contiguous(c)).toBe(true);
    }
  }, 120_000);

  it("kill -9 of one runner: its calls move to the others and every final arrives exactly once", async () => {
    const run = await runCalls(edge, balancer, CALLS, "kill", 0);
    const moved = movedCalls(run, balancer);
    expect(moved.moved).toBeGreaterThan(0);
    expect(Object.keys(moved.takenOverBy).sort()).not.toContain("r1");
    expect(Object.values(moved.takenOverBy).reduce((a, b) => a + b, 0)).toBe(moved.moved);
    const cmp = compareRecords(baseline.calls, run.calls);
    expect(cmp).toEqual({ lost: 0, doubled: 0, differing: [] });
    for (const c of run.calls) expect(contiguous(c), `call ${c.index}`).toBe(true);
    console.log(
      JSON.stringify({
        figure: "kill_9_one_runner",
        calls: CALLS,
        moved: moved.moved,
        takenOverBy: moved.takenOverBy,
        gapMsMedian: median(moved.gapsMs),
        gapMsMax: Math.max(...moved.gapsMs),
        finalsLost: cmp.lost,
        finalsDoubled: cmp.doubled,
      }),
    );
  }, 120_000);

  it("SIGTERM of another: goaway, its calls move before it exits, no gap in any transcript", async () => {
    const run = await runCalls(edge, balancer, CALLS, "term", 1);
    const victim = run.victim!;
    await victim.exited;
    const moved = movedCalls(run, balancer);
    expect(moved.moved).toBeGreaterThan(0);
    // every call it held was opened elsewhere before it exited
    const drainingAt = victim.lines.find((l) => l.ev === "draining")!.atMs;
    const takenAt = run.calls
      .filter((c) => c.heldBy === victim.name)
      .map(
        (c) =>
          balancer.runners
            .filter((r) => r !== victim)
            .flatMap((r) => r.opened())
            .find((l) => l.callSid === c.callSid && l.atMs >= drainingAt)!.atMs,
      );
    expect(Math.max(...takenAt)).toBeLessThanOrEqual(victim.exitedAtMs!);
    const cmp = compareRecords(baseline.calls, run.calls);
    expect(cmp).toEqual({ lost: 0, doubled: 0, differing: [] });
    for (const c of run.calls) expect(contiguous(c), `call ${c.index}`).toBe(true);
    console.log(
      JSON.stringify({
        figure: "sigterm_one_runner",
        calls: CALLS,
        moved: moved.moved,
        takenOverBy: moved.takenOverBy,
        handoverMs: Math.max(...takenAt) - drainingAt,
        exitedAfterMs: victim.exitedAtMs! - drainingAt,
        gapMsMedian: median(moved.gapsMs),
        gapMsMax: Math.max(...moved.gapsMs),
        finalsLost: cmp.lost,
        finalsDoubled: cmp.doubled,
      }),
    );
  }, 120_000);
});
