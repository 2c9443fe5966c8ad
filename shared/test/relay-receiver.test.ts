/** The runner's side of the relay delivery protocol (`RelayReceiver`), with plain values. */
import { describe, expect, it } from "vitest";
import {
  CallTombstones,
  RelayReceiver,
  admitSocket,
  admitStart,
  admitStartWhileDraining,
  newRelayReceiverCounters,
  parseRunnerToEdge,
} from "../src/index.js";
import type { RelayReceiverCounters, RelayStart } from "../src/index.js";

/** Samples per block (100 ms at 8 kHz). */
const N = 800;

function start(resumeFromSeq = 0): RelayStart {
  return {
    v: 1,
    type: "start",
    callSid: "CA1",
    streamSid: "MZ1",
    accountSid: "AC1",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: 100,
    tracks: ["inbound"],
    customParameters: {},
    resumeFromSeq,
  };
}

function receiver(resumeFromSeq = 0, counters: RelayReceiverCounters = newRelayReceiverCounters()) {
  return { r: new RelayReceiver(start(resumeFromSeq), counters, { resumeGraceMs: 60_000 }), counters };
}

/** The parsed ack (or other runner message) text. */
function parsed(text: string | undefined) {
  const r = parseRunnerToEdge(text ?? "");
  if (!r.ok) throw new Error(r.message);
  return r.message;
}

describe("de-duplication and gaps", () => {
  it("feeds each new seq once and counts replays and the blocks skipped", () => {
    const { r, counters } = receiver();
    const verdicts = [0, 1, 1, 0, 2, 5, 3, 6].map((seq) => r.audio(seq, seq * N, N));
    expect(verdicts).toEqual(["feed", "feed", "duplicate", "duplicate", "feed", "gap", "duplicate", "feed"]);
    expect(counters).toMatchObject({ blocks: 5, duplicateBlocks: 3, gapBlocks: 2, audioSamples: 5 * N });
    expect(r.expectedSeq).toBe(7);
  });

  it("a call resumed here from seq k takes k first and treats earlier seqs as replays", () => {
    const { r, counters } = receiver(7);
    expect(r.expectedSeq).toBe(7);
    expect(r.committedSeq).toBe(6);
    expect(r.audio(6, 6 * N, N)).toBe("duplicate");
    expect(r.audio(7, 7 * N, N)).toBe("feed");
    expect(counters).toMatchObject({ callsStarted: 1, callsResumed: 1, gapBlocks: 0 });
  });
});

describe("the commit point and acks", () => {
  it("commits the blocks that end at or before the engine's committed sample", () => {
    const { r } = receiver();
    for (let seq = 0; seq < 4; seq++) r.audio(seq, seq * N, N);
    expect(parsed(r.ack(0))).toEqual({ v: 1, type: "ack", seq: 3, committedSeq: -1 });
    expect(parsed(r.ack(2 * N + 10))).toEqual({ v: 1, type: "ack", seq: 3, committedSeq: 1 });
    expect(parsed(r.ack(2 * N + 10))).toMatchObject({ committedSeq: 1 });
    expect(parsed(r.ack(4 * N))).toMatchObject({ committedSeq: 3 });
    expect(r.committedSeq).toBe(3);
  });

  it("an engine that keeps no audio (no committed sample) commits everything fed", () => {
    const { r } = receiver();
    r.audio(0, 0, N);
    r.audio(1, N, N);
    expect(parsed(r.ack(undefined))).toMatchObject({ seq: 1, committedSeq: 1 });
  });

  it("a replay is acknowledged with the same arrival point", () => {
    const { r } = receiver();
    r.audio(0, 0, N);
    r.audio(1, N, N);
    r.audio(0, 0, N);
    expect(parsed(r.ack(0))).toMatchObject({ seq: 1, committedSeq: -1 });
  });

  it("keeps the commit point right across thousands of uncommitted blocks", () => {
    const { r } = receiver();
    for (let seq = 0; seq < 3000; seq++) r.audio(seq, seq * N, N);
    expect(parsed(r.ack(1500 * N))).toMatchObject({ committedSeq: 1499 });
    for (let seq = 3000; seq < 3500; seq++) r.audio(seq, seq * N, N);
    expect(parsed(r.ack(3200 * N))).toMatchObject({ committedSeq: 3199 });
    expect(parsed(r.ack(3500 * N))).toMatchObject({ seq: 3499, committedSeq: 3499 });
  });

  it("at the end of the call everything fed is committed", () => {
    const { r, counters } = receiver();
    for (let seq = 0; seq < 3; seq++) r.audio(seq, seq * N, N);
    r.ack(N);
    expect(r.end()).toBe(true);
    expect(r.end()).toBe(false);
    expect(parsed(r.finalAck())).toEqual({ v: 1, type: "ack", seq: 2, committedSeq: 2 });
    expect(counters.callsEnded).toBe(1);
  });
});

describe("a call across sockets", () => {
  it("resumes on a new socket and acknowledges again what the engine has", () => {
    const { r, counters } = receiver();
    expect(r.resume(undefined)).toBeUndefined(); // nothing fed yet: no ack
    r.audio(0, 0, N);
    r.audio(1, N, N);
    expect(parsed(r.resume(N))).toMatchObject({ type: "ack", seq: 1, committedSeq: 0 });
    expect(counters).toMatchObject({ callsStarted: 1, callsResumed: 2 });
  });

  it("waits the grace for a detached call, and forgets the grace when the edge is back", () => {
    const { r } = receiver();
    expect(r.detached(1000)).toBe(61_000);
    expect(r.nextDueMs).toBe(61_000);
    expect(r.expired(60_999)).toBe(false);
    expect(r.expired(61_000)).toBe(true);
    r.resume(undefined);
    expect(r.nextDueMs).toBeUndefined();
    expect(r.expired(100_000)).toBe(false);
  });

  it("on drain: goaway and close 1012, and no grace for the socket that goes", () => {
    const { r } = receiver();
    const goaway = r.drain();
    expect(parsed(goaway.text)).toMatchObject({ type: "goaway" });
    expect(goaway).toMatchObject({ code: 1012, reason: "service restart" });
    expect(r.detached(1000)).toBeUndefined();
    expect(r.expired(1_000_000)).toBe(false);
  });

  it("an ended call sets no grace", () => {
    const { r } = receiver();
    r.end();
    expect(r.detached(0)).toBeUndefined();
  });

  it("parks the engine of a detached call at its engine grace, ends the call at its grace", () => {
    const counters = newRelayReceiverCounters();
    const r = new RelayReceiver(start(), counters, { resumeGraceMs: 60_000, engineGraceMs: 800 });
    r.audio(0, 0, N);
    r.audio(1, N, N);
    expect(parsed(r.ack(N))).toMatchObject({ seq: 1, committedSeq: 0 });
    expect(r.detached(1000)).toBe(1800);
    expect(r.due(1799)).toBeUndefined();
    expect(r.due(1800)).toBe("park");
    r.parked(); // the session said its last: everything fed is committed
    expect(r.isParked).toBe(true);
    expect(r.committedSeq).toBe(1);
    expect(r.nextDueMs).toBe(61_000);
    expect(r.due(60_999)).toBeUndefined();
    expect(r.due(61_000)).toBe("end");
    // the edge comes back: told everything fed is committed; the replay is recognised by seq
    const back = r.reattach(undefined);
    expect(parsed(back.at(-1))).toMatchObject({ type: "ack", seq: 1, committedSeq: 1 });
    r.reopened();
    expect(r.isParked).toBe(false);
    expect(r.audio(1, N, N)).toBe("duplicate");
    expect(r.audio(2, 2 * N, N)).toBe("feed");
    expect(r.nextDueMs).toBeUndefined();
  });

  it("a resume within the engine grace keeps the engine; no engine grace past the call's grace", () => {
    const r = new RelayReceiver(start(), newRelayReceiverCounters(), { resumeGraceMs: 60_000, engineGraceMs: 800 });
    r.detached(0);
    r.resume(undefined);
    expect(r.nextDueMs).toBeUndefined();
    expect(r.due(1_000_000)).toBeUndefined();
    const short = new RelayReceiver(start(), newRelayReceiverCounters(), { resumeGraceMs: 300, engineGraceMs: 800 });
    expect(short.detached(0)).toBe(300);
    expect(short.due(300)).toBe("end");
    const draining = new RelayReceiver(start(), newRelayReceiverCounters(), {
      resumeGraceMs: 60_000,
      engineGraceMs: 800,
    });
    draining.drain();
    expect(draining.detached(0)).toBeUndefined();
  });
});

describe("admitting sockets", () => {
  it("takes sockets while running and refuses their upgrade (HTTP 503, Retry-After) while draining", () => {
    const counters = newRelayReceiverCounters();
    expect(admitSocket(false, counters)).toBeUndefined();
    expect(counters.callsRefused).toBe(0);
    const refusal = admitSocket(true, counters)!;
    expect(refusal).toMatchObject({ status: 503, reason: "draining" });
    expect(refusal.retryAfterS).toBeGreaterThanOrEqual(1);
    expect(refusal.message).toMatch(/shutting down/);
    expect(counters.callsRefused).toBe(1);
  });

  it("takes starts while running and answers one that comes while draining with goaway and 1012, counted", () => {
    const counters = newRelayReceiverCounters();
    expect(admitStartWhileDraining(false, counters)).toBeUndefined();
    expect(counters.callsRefused).toBe(0);
    const closing = admitStartWhileDraining(true, counters)!;
    expect(closing.code).toBe(1012);
    expect(parseRunnerToEdge(closing.text)).toMatchObject({ ok: true, message: { type: "goaway" } });
    expect(counters.callsRefused).toBe(1);
  });
});

describe("the guard: seq window and pace", () => {
  const guarded = (relayBufferMs: number, counters = newRelayReceiverCounters()) => ({
    r: new RelayReceiver(start(), counters, { resumeGraceMs: 60_000, guard: { relayBufferMs, startedAtMs: 0 } }),
    counters,
  });

  it("refuses a seq far past the next expected one: never fed, never acknowledged, later blocks still fed", () => {
    const { r, counters } = guarded(120_000);
    r.audio(0, 0, N, 0);
    expect(r.audio(0xffffffff, 0, N, 100)).toBe("out_of_window");
    expect(r.expectedSeq).toBe(1);
    expect(parsed(r.ack(undefined))).toMatchObject({ seq: 0 });
    // the edge's next blocks are not taken for replays
    expect(r.audio(1, N, N, 100)).toBe("feed");
    expect(r.audio(2, 2 * N, N, 200)).toBe("feed");
    expect(counters).toMatchObject({ blocks: 3, blocksOutOfWindow: 1, duplicateBlocks: 0, gapBlocks: 0 });
  });

  it("takes a jump of up to the relay buffer in blocks (audio the edge dropped while the runner was away)", () => {
    const { r } = guarded(120_000);
    r.audio(0, 0, N, 0);
    expect(r.audio(1 + 1200, 1201 * N, N, 0)).toBe("gap");
    expect(r.audio(1203 + 1201, 2404 * N, N, 0)).toBe("out_of_window");
  });

  it("says when audio comes faster than real time beyond the relay buffer, and when it is due", () => {
    const { r, counters } = guarded(1000);
    const verdicts = Array.from({ length: 12 }, (_, seq) => r.audio(seq, seq * N, N, 0));
    expect(verdicts.filter((v) => v === "feed")).toHaveLength(10);
    expect(verdicts.slice(10)).toEqual(["too_fast", "too_fast"]);
    expect(r.expectedSeq).toBe(10); // nothing moved
    expect(r.paceDueMs(N)).toBe(100);
    expect(r.audio(10, 10 * N, N, 99)).toBe("too_fast");
    expect(r.audio(10, 10 * N, N, 100)).toBe("feed");
    expect(r.paceDueMs(N)).toBe(200);
    expect(counters).toMatchObject({ blocks: 11 });
  });
});

describe("audio frames", () => {
  it("a frame is the start's rate and at most a block long", () => {
    const { r } = receiver();
    expect(r.frameProblem(N, 8000)).toBeUndefined();
    expect(r.frameProblem(N / 2, 8000)).toBeUndefined(); // the last block of a call may be shorter
    expect(r.frameProblem(N + 1, 8000)).toMatch(/801 samples, expected 1\.\.800/);
    expect(r.frameProblem(0, 8000)).toMatch(/0 samples/);
    expect(r.frameProblem(N, 16000)).toMatch(/16000 Hz/);
  });
});

describe("admitting starts", () => {
  it("one start per socket, for the credential's call, with a block size and rate the runner takes", () => {
    const counters = newRelayReceiverCounters();
    expect(admitStart(start(), "CA1", false, counters)).toBeUndefined();
    expect(admitStart(start(), undefined, false, counters)).toBeUndefined(); // auth off: any call
    const second = admitStart(start(), "CA1", true, counters)!;
    expect(second).toMatchObject({ code: 4002 });
    expect(parsed(second.text)).toMatchObject({ type: "error", code: "second_start" });
    expect(admitStart(start(), "CAother", false, counters)).toMatchObject({ code: 4001 });
    expect(admitStart({ ...start(), blockMs: 0 }, "CA1", false, counters)).toMatchObject({ code: 4006 });
    expect(admitStart({ ...start(), sampleRateHz: 7 }, "CA1", false, counters)).toMatchObject({ code: 4006 });
    expect(counters.startsRefused).toBe(4);
  });
});

describe("events while no socket is attached", () => {
  it("keeps them and hands them to the next socket first, then the ack", () => {
    const { r, counters } = receiver();
    r.audio(0, 0, N);
    r.detached(1000);
    r.keepUndelivered("final-1", "final");
    r.keepUndelivered("partial-2", "partial");
    const out = r.reattach(undefined);
    expect(out.slice(0, 2)).toEqual(["final-1", "partial-2"]);
    expect(parsed(out[2])).toMatchObject({ type: "ack", seq: 0 });
    expect(r.eventsLost).toEqual({ events: 0, finals: 0 });
    expect(counters.eventsHandedOver).toBe(2);
  });

  it("bounded: past the limit partials go first, and what is dropped is counted as lost", () => {
    const { r, counters } = (() => {
      const counters = newRelayReceiverCounters();
      return { r: new RelayReceiver(start(), counters, { resumeGraceMs: 1, maxUndeliveredEvents: 3 }), counters };
    })();
    r.detached(0);
    r.keepUndelivered("f1", "final");
    r.keepUndelivered("p1", "partial");
    r.keepUndelivered("f2", "final");
    r.keepUndelivered("f3", "final"); // p1 goes
    r.keepUndelivered("f4", "final"); // no partial left: f1 goes
    expect(r.eventsLost).toEqual({ events: 5, finals: 4 });
    expect(r.reattach(undefined)).toEqual(["f2", "f3", "f4"]);
    expect(counters).toMatchObject({ eventsUndelivered: 2, eventsHandedOver: 3 });
  });

  it("a call that ends with events kept has lost them (forget)", () => {
    const { r, counters } = receiver();
    r.detached(0);
    r.keepUndelivered("f1", "final");
    r.keepUndelivered("e", "other");
    r.end();
    expect(r.forget()).toEqual({ events: 2, finals: 1 });
    expect(counters.eventsUndelivered).toBe(2);
  });
});

describe("tombstones", () => {
  it("tell a later start of a call given up how many events were lost, once, for a while", () => {
    const t = new CallTombstones(2, 1000);
    t.remember("CA1", { events: 3, finals: 2 }, 0);
    t.remember("CA2", { events: 0, finals: 0 }, 0); // nothing lost: nothing kept
    expect(t.size).toBe(1);
    expect(parsed(t.take("CA1", 500))).toMatchObject({
      type: "error",
      code: "events_lost",
      lost: { events: 3, finals: 2 },
    });
    expect(t.take("CA1", 600)).toBeUndefined();
    t.remember("CA3", { events: 1, finals: 0 }, 0);
    expect(t.take("CA3", 1001)).toBeUndefined(); // expired
  });

  it("are bounded: the oldest is forgotten first", () => {
    const t = new CallTombstones(2, 60_000);
    for (const sid of ["CA1", "CA2", "CA3"]) t.remember(sid, { events: 1, finals: 1 }, 0);
    expect(t.size).toBe(2);
    expect(t.take("CA1", 1)).toBeUndefined();
    expect(t.take("CA3", 1)).toBeDefined();
  });
});
