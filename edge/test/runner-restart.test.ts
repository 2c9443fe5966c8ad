/**
 * The runner killed mid-call and a new one started on the same URL: the edge replays the audio
 * after the last final to it, and the call's transcript (what a subscriber gets) has no gap and
 * no duplicate — every word once, in order, utterance ids 1..n once each — as if one runner had
 * done it all; the call's record holds the same. Real workerd, real runners (WordEngine through the transcript policy).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { API_TOKEN, TwilioCall, freePort, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { Subscriber, WordEngine, startTranscribingRunner, wallNow, wordOf } from "./transcripts.js";

let port: number;
let edge: TestEdge;
let runner: Awaited<ReturnType<typeof startTranscribingRunner>> | undefined;

beforeAll(async () => {
  port = await freePort();
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${port}/relay` });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

it("keeps one transcript with no gap and no duplicate when the runner is killed mid-call and replaced", async () => {
  const first = new WordEngine(5);
  runner = await startTranscribingRunner(first, port);
  const call = await TwilioCall.start(edge);
  const sub = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
  const playing = call.play(testAudio(200, 11), { speed: 2 }); // 4 s of audio: 40 blocks, 8 finals
  // kill it in the middle of an utterance: two finals out, the third utterance under way
  await waitFor("two finals and partials of the third utterance", () =>
    sub.of("partial").some((e) => e.utteranceId === `${call.callSid}:u3`),
  );
  await runner.close(); // the process is gone: its sockets drop, its engine sessions with it
  runner = undefined;
  await waitFor("the edge to notice", async () => (await edge.callStats(call.callSid)).relay.disconnects >= 1);
  const second = new WordEngine(5);
  runner = await startTranscribingRunner(second, port);
  const backAtMs = wallNow();
  expect(await playing).toBe(200);
  expect(await call.hangUp()).toBe(1000);
  expect(await sub.closed).toBe(1000);

  // recovery: the new runner listening -> its first event at the subscriber, within the edge's
  // reconnect backoff (RELAY_BACKOFF_MAX_MS 200 here) plus the replay; loose for a loaded machine
  const recoveryMs = sub.events.find((r) => r.e.wallMs >= backAtMs)!.atMs - backAtMs;
  expect(recoveryMs).toBeLessThan(2000);
  // both runners transcribed part of the call
  expect(first.finals.length).toBeGreaterThanOrEqual(2);
  expect(second.finals.length).toBeGreaterThanOrEqual(1);
  // the subscriber's transcript: every word once, in order
  const finals = sub.of("final");
  expect(finals.map((e) => e.text.replace(/\.$/, "")).join(" ")).toBe(
    Array.from({ length: 40 }, (_, i) => wordOf(i)).join(" "),
  );
  expect(finals.map((e) => e.utteranceId)).toEqual(Array.from({ length: 8 }, (_, i) => `${call.callSid}:u${i + 1}`));
  // audio spans follow each other with no gap or overlap
  for (let i = 1; i < finals.length; i++) expect(finals[i]!.audioStartMs).toBe(finals[i - 1]!.audioEndMs);
  // one start, one end; partials only for open utterances, seq 0, 1, 2, ... within each
  expect(sub.of("call.started")).toHaveLength(1);
  expect(sub.of("call.ended")).toHaveLength(1);
  const closed = new Set<string>();
  const seqs = new Map<string, number[]>();
  for (const { e } of sub.events) {
    if (e.type === "final") closed.add(e.utteranceId);
    if (e.type !== "partial") continue;
    expect(closed.has(e.utteranceId), `partial of ${e.utteranceId} after its final`).toBe(false);
    seqs.set(e.utteranceId, [...(seqs.get(e.utteranceId) ?? []), e.seq]);
  }
  for (const [id, s] of seqs) expect(s, id).toEqual(s.map((_, i) => i));
  // the call's record holds the same transcript (D1 or the call's object)
  const record = (await (
    await fetch(`${edge.url}/calls/${call.callSid}`, { headers: { Authorization: `Bearer ${API_TOKEN}` } })
  ).json()) as { utterances: { utteranceId: string; text: string }[] };
  expect(record.utterances.map((u) => [u.utteranceId, u.text])).toEqual(finals.map((e) => [e.utteranceId, e.text]));
  const stats = await edge.callStats(call.callSid);
  expect(stats.eventStream!.continuity.runnerSessions).toBe(2);
  expect(stats.relay).toMatchObject({ blocksDropped: 0, lostAtEnd: 0 });
});
