import { describe, expect, it } from "vitest";
import { TranscriptContinuity } from "../src/index.js";
import type { FinalEvent, PartialEvent, TranscriptEvent } from "../src/index.js";

const SID = "CA1";

function started(wallMs = 0): TranscriptEvent {
  return { v: 1, type: "call.started", callSid: SID, wallMs, engine: "e" };
}

function partial(u: number, seq: number, text: string, audioEndMs: number): PartialEvent {
  return {
    v: 1,
    type: "partial",
    callSid: SID,
    wallMs: 0,
    utteranceId: `${SID}:u${u}`,
    seq,
    text,
    stable: "",
    volatile: text,
    revised: false,
    audioEndMs,
  };
}

function final(u: number, text: string, audioStartMs: number, audioEndMs: number): FinalEvent {
  return {
    v: 1,
    type: "final",
    callSid: SID,
    wallMs: 0,
    utteranceId: `${SID}:u${u}`,
    text,
    rawText: text,
    stable: true,
    engine: "e",
    audioStartMs,
    audioEndMs,
  };
}

/** Feeds every event; returns what is delivered as "type id [seq] text". */
function run(c: TranscriptContinuity, events: TranscriptEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const r = c.accept(e);
    if (!("event" in r)) continue;
    const d = r.event;
    if (d.type === "partial") out.push(`partial ${d.utteranceId} ${d.seq} ${d.text}`);
    else if (d.type === "final") out.push(`final ${d.utteranceId} ${d.text}`);
    else out.push(d.type);
  }
  return out;
}

describe("TranscriptContinuity", () => {
  it("passes one runner session's events through unchanged", () => {
    const c = new TranscriptContinuity(SID);
    const events = [started(), partial(1, 0, "a", 100), final(1, "a b", 0, 200), partial(2, 0, "c", 300)];
    expect(run(c, events)).toEqual(["call.started", "partial CA1:u1 0 a", "final CA1:u1 a b", "partial CA1:u2 0 c"]);
  });

  it("continues the open utterance and the numbering in a new runner session", () => {
    const c = new TranscriptContinuity(SID);
    run(c, [
      started(),
      final(1, "a", 0, 500),
      final(2, "b", 500, 1000),
      partial(3, 0, "c", 1100),
      partial(3, 1, "c d", 1200),
    ]);
    // the new runner hears from 1000 ms again: its u1 is the edge's u3
    expect(
      run(c, [started(), partial(1, 0, "c", 1100), final(1, "c d e", 1000, 1500), final(2, "f", 1500, 2000)]),
    ).toEqual(["partial CA1:u3 2 c", "final CA1:u3 c d e", "final CA1:u4 f"]);
    expect(c.counters).toMatchObject({ runnerSessions: 2, dropped: { duplicate_call_started: 1 } });
  });

  it("drops a final delivered before the runner died, and partials of audio already final", () => {
    const c = new TranscriptContinuity(SID);
    run(c, [started(), final(1, "a", 0, 500)]);
    // the commit of u1 never reached the edge: the new runner hears 0..500 again
    expect(run(c, [started(), partial(1, 0, "a", 300), final(1, "a", 0, 500), partial(2, 0, "b", 700)])).toEqual([
      "partial CA1:u2 0 b",
    ]);
    expect(c.counters.dropped).toEqual({ duplicate_call_started: 1, stale_partial: 1, duplicate_final: 1 });
  });

  it("gives a new id to an utterance after one whose final was empty (never sent)", () => {
    const c = new TranscriptContinuity(SID);
    expect(run(c, [started(), partial(1, 0, "um", 100), partial(2, 0, "yes", 600), final(2, "yes", 500, 700)])).toEqual(
      ["call.started", "partial CA1:u1 0 um", "partial CA1:u2 0 yes", "final CA1:u2 yes"],
    );
  });

  it("delivers call.ended once", () => {
    const c = new TranscriptContinuity(SID);
    const ended: TranscriptEvent = { v: 1, type: "call.ended", callSid: SID, wallMs: 1, reason: "x" };
    expect(run(c, [started(), ended, ended])).toEqual(["call.started", "call.ended"]);
  });

  it("numbers from firstUtteranceN: a restarted object never gives an id it gave before", () => {
    const c = new TranscriptContinuity(SID, { firstUtteranceN: 4 });
    expect(c.nextUtteranceN).toBe(4);
    expect(run(c, [started(), partial(1, 0, "a", 100), final(1, "a b", 0, 200), final(2, "c", 200, 300)])).toEqual([
      "call.started",
      "partial CA1:u4 0 a",
      "final CA1:u4 a b",
      "final CA1:u5 c",
    ]);
    expect(c.nextUtteranceN).toBe(6);
    expect(() => new TranscriptContinuity(SID, { firstUtteranceN: 0 })).toThrow(/firstUtteranceN is 0/);
  });
});
