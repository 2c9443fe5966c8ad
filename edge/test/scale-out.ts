/**
 * Many calls over runner instances behind HAProxy, with a fault or none: the scenario the
 * load-balancer test runs (a few calls) and `scale-out-bench.ts` runs at 30 calls. Each call
 * plays the same deterministic audio per index (so a no-fault run and a fault run can be compared
 * record by record), an agent subscribes to its events, and the fault hits one runner mid-call:
 * `kill` (SIGKILL: its sockets drop, its sessions die) or `term` (SIGTERM: it drains, `goaway`).
 */
import { API_TOKEN, TwilioCall, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import type { Balancer, RunnerProcess } from "./balancer.js";
import { Subscriber } from "./transcripts.js";

export type Fault = "none" | "kill" | "term";

/** One call's outcome: its record's utterances and what its agent got. */
export interface CallOutcome {
  readonly index: number;
  readonly callSid: string;
  /** `[utterance n, text]` from the call's record (`GET /calls/{sid}`). */
  readonly record: readonly (readonly [number, string])[];
  /** Finals the agent got: `[audioStartMs, audioEndMs, text]`. */
  readonly finals: readonly (readonly [number, number, string])[];
  readonly sub: Subscriber;
  /** The runner that held the call when the fault hit. */
  readonly heldBy: string | undefined;
}

export interface RunOutcome {
  readonly calls: CallOutcome[];
  /** The runner the fault hit, and when (wall ms). */
  readonly victim: RunnerProcess | undefined;
  readonly faultAtMs: number | undefined;
}

/** Frames (20 ms) each call plays: 6 s, 60 blocks, 12 finals. */
export const CALL_FRAMES = 300;

/**
 * Runs `calls` calls at real time through `edge` (RUNNER_URL at `balancer`), hitting `victim`
 * (default the first runner) with `fault` once every call has its second final.
 */
export async function runCalls(
  edge: TestEdge,
  balancer: Balancer,
  calls: number,
  fault: Fault,
  victimIndex = 0,
): Promise<RunOutcome> {
  const twilio = await Promise.all(Array.from({ length: calls }, () => TwilioCall.start(edge)));
  const subs = await Promise.all(twilio.map((c) => Subscriber.connect(edge, `/calls/${c.callSid}/events?since=0`)));
  const plays = twilio.map((c, i) => c.play(testAudio(CALL_FRAMES, 100 + i), { speed: 1 }));
  let victim: RunnerProcess | undefined;
  let faultAtMs: number | undefined;
  const heldBy = new Map<string, string>();
  await waitFor("every call's second final", () => subs.every((s) => s.of("final").length >= 2), 30_000);
  for (const c of twilio) heldBy.set(c.callSid, balancer.holder(c.callSid)?.name ?? "");
  if (fault !== "none") {
    victim = balancer.runners[victimIndex]!;
    faultAtMs = Date.now();
    victim.kill(fault === "kill" ? "SIGKILL" : "SIGTERM");
  }
  await Promise.all(plays);
  await Promise.all(twilio.map((c) => c.hangUp()));
  await Promise.all(subs.map((s) => s.closed));
  const out: CallOutcome[] = [];
  for (const [index, c] of twilio.entries()) {
    const res = await fetch(`${edge.url}/calls/${c.callSid}`, { headers: { Authorization: `Bearer ${API_TOKEN}` } });
    const view = (await res.json()) as { utterances: { utteranceId: string; text: string }[] };
    out.push({
      index,
      callSid: c.callSid,
      record: view.utterances.map((u) => [Number(u.utteranceId.split(":u")[1]), u.text] as const),
      finals: subs[index]!.of("final").map((e) => [e.audioStartMs, e.audioEndMs, e.text] as const),
      sub: subs[index]!,
      heldBy: heldBy.get(c.callSid),
    });
  }
  return { calls: out, victim, faultAtMs };
}

/** Finals of the fault run missing from, and extra to, the no-fault run's, per call (by index). */
export function compareRecords(
  baseline: readonly CallOutcome[],
  faulted: readonly CallOutcome[],
): { lost: number; doubled: number; differing: number[] } {
  let lost = 0;
  let doubled = 0;
  const differing: number[] = [];
  for (const b of baseline) {
    const f = faulted[b.index]!;
    const want = b.record.map(([n, t]) => `${n}:${t}`);
    const got = f.record.map(([n, t]) => `${n}:${t}`);
    const counts = new Map<string, number>();
    for (const g of got) counts.set(g, (counts.get(g) ?? 0) + 1);
    for (const w of want) {
      const n = counts.get(w) ?? 0;
      if (n === 0) lost++;
      counts.set(w, n - 1);
    }
    for (const [, n] of counts) if (n > 0) doubled += n;
    if (want.join("|") !== got.join("|")) differing.push(b.index);
  }
  return { lost, doubled, differing };
}

/**
 * For the calls `victim` held: how they moved. `gapMs`: for each, the fault to the first event
 * its agent got from the runner that took it over (a transcript event after the fault), ms.
 */
export function movedCalls(
  run: RunOutcome,
  balancer: Balancer,
): { moved: number; gapsMs: number[]; takenOverBy: Record<string, number> } {
  const victim = run.victim!;
  const moved = run.calls.filter((c) => c.heldBy === victim.name);
  const takenOverBy: Record<string, number> = {};
  const gapsMs: number[] = [];
  for (const c of moved) {
    const to = balancer.runners.find(
      (r) => r !== victim && r.opened().some((l) => l.callSid === c.callSid && l.atMs >= run.faultAtMs!),
    );
    if (to) takenOverBy[to.name] = (takenOverBy[to.name] ?? 0) + 1;
    const next = c.sub.events.find((r) => r.atMs >= run.faultAtMs! && (r.e.type === "partial" || r.e.type === "final"));
    if (next) gapsMs.push(Math.round(next.atMs - run.faultAtMs!));
  }
  return { moved: moved.length, gapsMs, takenOverBy };
}

/** Whether each call's finals follow each other with no gap or overlap in call audio. */
export function contiguous(c: CallOutcome): boolean {
  return c.finals.every((f, i) => i === 0 || f[0] === c.finals[i - 1]![1]);
}
