/** The runner's side of the relay delivery protocol (`RelayReceiver`), with plain values. */
import { describe, expect, it } from "vitest";
import { RelayReceiver, admitSocket, newRelayReceiverCounters, parseRunnerToEdge } from "../src/index.js";
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
});

describe("admitting sockets", () => {
  it("takes sockets while running and refuses them (goaway, 1013) while draining", () => {
    const counters = newRelayReceiverCounters();
    expect(admitSocket(false, counters)).toBeUndefined();
    const refusal = admitSocket(true, counters)!;
    expect(parsed(refusal.text)).toMatchObject({ type: "goaway" });
    expect(refusal).toMatchObject({ code: 1013, reason: "try again later" });
    expect(counters.callsRefused).toBe(1);
  });
});
