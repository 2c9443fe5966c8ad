/**
 * Call records on real workerd with Miniflare's real D1: each call's Durable Object keeps its
 * record in its own storage and copies it to D1 (on call.ended, every few finals, and on a
 * timer); the records API reads D1 (bearer token). D1 failing mid-call: the finals wait in the
 * object's storage and all reach D1 once it answers again.
 *
 * How D1 is made to fail: the test renames the `utterances` table through the same D1 database
 * (Miniflare's `getD1Database`), so every write batch the edge sends fails with "no such table"
 * (a batch is a transaction: the call row is not written either); renaming it back is D1
 * answering again. That is D1 returning errors, not D1 being unreachable or slow (a write that
 * hangs is cut at 15 s by the edge and retried the same way); nothing in the Worker knows about
 * the test.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { D1Database } from "@cloudflare/workers-types/experimental";
import { RELAY_SECRET, startTestEdge, TwilioCall, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { UPSERT_CALL, UPSERT_UTTERANCE, callRowValues, utteranceRowValues } from "../src/records/records-sql.js";
import { api, apiJson, startTalkingRunner } from "./transcribing.js";
import type { TalkingRunner } from "./transcribing.js";

/** A CallSid in Twilio's format that no call uses. */
const NO_CALL = "CA" + "0".repeat(32);

let runner: TalkingRunner;
let edge: TestEdge;
let db: D1Database;

beforeAll(async () => {
  runner = await startTalkingRunner(undefined, RELAY_SECRET);
  edge = await startTestEdge({
    RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay`,
    RECORDS_FLUSH_FINALS: "3",
    RECORDS_FLUSH_MS: "300",
    RECORDS_RETRY_MIN_MS: "50",
    RECORDS_RETRY_MAX_MS: "400",
  });
  db = await edge.local.d1();
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

/** A call that speaks `seconds` of audio at `speed` times real time and hangs up. */
async function talk(seconds: number, speed = 4): Promise<TwilioCall> {
  const call = await TwilioCall.start(edge);
  await call.play(testAudio(seconds * 50), { speed });
  await call.hangUp();
  return call;
}

describe("records of a call", () => {
  it("puts the call and every final, with audio times and latencies, in D1; GET /calls/{CallSid} shows them", async () => {
    const call = await talk(2);
    const got = await waitFor("the ended call in D1", async () => {
      const res = await api(edge, `/calls/${call.callSid}`);
      const body = res.ok ? ((await res.json()) as any) : undefined;
      return body?.source === "d1" && body.call.status === "ended" ? body : undefined;
    });
    // 2 s of audio, one utterance per 400 ms
    expect(got.utterances.map((u: any) => u.utteranceId)).toEqual([1, 2, 3, 4, 5].map((n) => `${call.callSid}:u${n}`));
    expect(got.utterances[1]).toMatchObject({
      n: 2,
      text: "מילה 2 נאמרה.",
      rawText: "מילה 2 נאמרה",
      engine: "talking",
      audioStartMs: 400,
      audioEndMs: 800,
      firstPassText: null,
      alternatives: [{ engine: "whisper", text: "מילה 2 נאמרה שוב." }],
    });
    expect(got.utterances[0].alternatives).toBeNull();
    for (const u of got.utterances) {
      expect(u.latencyMs).toEqual(expect.any(Number));
      expect(u.firstPartialLatencyMs).toEqual(expect.any(Number));
    }
    expect(got.call).toMatchObject({
      callSid: call.callSid,
      accountSid: call.identity.accountSid,
      status: "ended",
      engines: ["talking"],
      finals: 5,
      endReason: expect.any(String),
    });
    expect(got.call.endedAtMs).toBeGreaterThanOrEqual(got.call.startedAtMs);
    expect(got.call.latency.finalMs.p50).toEqual(expect.any(Number));
    expect(got.call.latency.finalMs.p95).toBeGreaterThanOrEqual(got.call.latency.finalMs.p50);
    expect(got.call.latency.firstPartialMs.p50).toEqual(expect.any(Number));
  });

  it("keeps the timeline in the call's Durable Object: call.started, the finals, call.ended", async () => {
    const call = await talk(1.2);
    const view = await waitFor("the record's call.ended", async () => {
      const v = await apiJson(edge, `/calls/${call.callSid}/record`);
      return v.call.status === "ended" && v.d1.upToDate ? v : undefined;
    });
    expect(view.timeline.map((e: any) => e.type)).toEqual(["call.started", "final", "final", "final", "call.ended"]);
    expect(view.d1).toMatchObject({ configured: true, unwrittenUtterances: 0, upToDate: true });
  });

  it("writes nothing twice: replaying a write changes no row, an older version never replaces a newer one", async () => {
    const call = await talk(1.6);
    const view = await waitFor("the call written to D1", async () => {
      const v = await apiJson(edge, `/calls/${call.callSid}/record`);
      return v.call.status === "ended" && v.d1.upToDate ? v : undefined;
    });
    const { version } = (await db.prepare("SELECT version FROM calls WHERE call_sid = ?").bind(call.callSid).first<{
      version: number;
    }>())!;
    const before = await snapshot(call.callSid);
    expect(before.utterances).toHaveLength(4);
    const replay = (callVersion: number, utterances: any[], text?: string) =>
      db.batch([
        db.prepare(UPSERT_CALL).bind(...callRowValues({ ...view.call, finals: 99 }, callVersion, Date.now())),
        ...utterances.map((u) =>
          db.prepare(UPSERT_UTTERANCE).bind(...utteranceRowValues(call.callSid, text ? { ...u, text } : u)),
        ),
      ]);
    // the same write again (a retry after a lost answer), then a stale one (older versions)
    await replay(version, view.utterances);
    await replay(
      version - 1,
      view.utterances.map((u: any) => ({ ...u, version: u.version - 1 })),
      "stale",
    );
    expect(await snapshot(call.callSid)).toEqual(before);
    // a newer version of one utterance (a second pass) does replace it, still one row
    await replay(version + 1, [{ ...view.utterances[0], version: 2 }], "revised");
    const after = await snapshot(call.callSid);
    expect(after.utterances.map((u: any) => u.text)).toEqual([
      "revised",
      ...before.utterances.slice(1).map((u: any) => u.text),
    ]);
    expect(after.call.finals).toBe(99);
  });
});

/** Everything D1 holds about a call except the write time. */
async function snapshot(callSid: string): Promise<{ call: any; utterances: any[] }> {
  const call = await db.prepare("SELECT * FROM calls WHERE call_sid = ?").bind(callSid).first<any>();
  const { written_at_ms: _w, ...rest } = call;
  const utterances = (await db.prepare("SELECT * FROM utterances WHERE call_sid = ? ORDER BY n").bind(callSid).all())
    .results;
  return { call: rest, utterances };
}

describe("the records API", () => {
  it("refuses requests without a token (401) or with a wrong one (401)", async () => {
    for (const path of ["/calls", `/calls/${NO_CALL}`, `/calls/${NO_CALL}/record`]) {
      const none = await api(edge, path, null);
      expect([path, none.status]).toEqual([path, 401]);
      expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await api(edge, path, "wrong")).status).toBe(401);
    }
  });

  it("answers 404 for a call it never saw, and 400 for bad query values", async () => {
    expect((await api(edge, `/calls/${NO_CALL}`)).status).toBe(404);
    for (const q of ["limit=0", "limit=500", "status=ringing", "since=yesterday", "cursor=nonsense"]) {
      expect([q, (await api(edge, `/calls?${q}`)).status]).toEqual([q, 400]);
    }
  });

  it("pages through calls newest first with a cursor, filtered by status and time", async () => {
    const since = Date.now();
    const calls: string[] = [];
    for (let i = 0; i < 5; i++) calls.push((await talk(0.4, 8)).callSid);
    await waitFor("5 ended calls in D1", async () => {
      const r = await apiJson(edge, `/calls?since=${since}&status=ended&limit=10`);
      return r.calls.length === 5;
    });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: any = await apiJson(edge, `/calls?since=${since}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.calls.length).toBeLessThanOrEqual(2);
      seen.push(...page.calls.map((c: any) => c.callSid));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...calls].reverse());
    const until = await apiJson(edge, `/calls?since=${since}&until=${new Date(Date.now() + 60_000).toISOString()}`);
    expect(until.calls.length).toBe(5);
    expect((await apiJson(edge, `/calls?since=${since}&status=in-progress`)).calls).toEqual([]);
    expect((await apiJson(edge, `/calls?since=${Date.now() + 60_000}`)).calls).toEqual([]);
  });
});

describe("D1 failing in the middle of calls", () => {
  it("keeps the finals in the calls' objects while D1 fails and writes every one once it answers again", async () => {
    const calls = [await TwilioCall.start(edge), await TwilioCall.start(edge)];
    const playing = calls.map((c) => c.play(testAudio(4 * 50), { speed: 2 }));
    const inD1 = async (callSid: string) =>
      (await db
        .prepare("SELECT count(*) AS n FROM utterances WHERE call_sid = ?")
        .bind(callSid)
        .first<{ n: number }>())!.n;
    await waitFor(
      "finals of both calls in D1",
      async () => (await inD1(calls[0]!.callSid)) > 0 && (await inD1(calls[1]!.callSid)) > 0,
    );
    await db.prepare("ALTER TABLE utterances RENAME TO utterances_away").run();
    const before = await Promise.all(
      calls.map(
        async (c) =>
          (await db
            .prepare("SELECT count(*) AS n FROM utterances_away WHERE call_sid = ?")
            .bind(c.callSid)
            .first<{ n: number }>())!.n,
      ),
    );
    await Promise.all(playing);
    await Promise.all(calls.map((c) => c.hangUp()));
    // the calls ended during the outage: each object holds all 10 finals, D1 lacks some
    for (const c of calls) {
      const view = await waitFor(`${c.callSid} ended, in its object`, async () => {
        const v = await apiJson(edge, `/calls/${c.callSid}/record`);
        return v.call.status === "ended" && v.utterances.length === 10 ? v : undefined;
      });
      expect(view.d1.unwrittenUtterances).toBeGreaterThan(0);
      expect(view.call.counters.d1Failures).toBeGreaterThan(0);
      // the API still answers, from the object
      const got = await apiJson(edge, `/calls/${c.callSid}`);
      expect(got.source).toBe("durable-object");
      expect(got.utterances).toHaveLength(10);
    }
    await db.prepare("ALTER TABLE utterances_away RENAME TO utterances").run();
    const backAt = Date.now();
    for (const c of calls) {
      await waitFor(`all of ${c.callSid} in D1`, async () => {
        const r = await api(edge, `/calls/${c.callSid}`);
        const b = r.ok ? ((await r.json()) as any) : undefined;
        return b?.source === "d1" && b.call.status === "ended" && b.utterances.length === 10;
      });
    }
    const recoveryMs = Date.now() - backAt;
    for (const [i, c] of calls.entries()) {
      const d1 = await apiJson(edge, `/calls/${c.callSid}`);
      const own = await apiJson(edge, `/calls/${c.callSid}/record`);
      expect(d1.utterances.map((u: any) => [u.utteranceId, u.text, u.audioStartMs])).toEqual(
        own.utterances.map((u: any) => [u.utteranceId, u.text, u.audioStartMs]),
      );
      expect(own.d1.upToDate).toBe(true);
      expect(before[i]).toBeLessThan(10);
    }
    console.log(JSON.stringify({ figure: "d1_recovery_ms", recoveryMs }));
  });
});
