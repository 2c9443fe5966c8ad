/**
 * The relay's delivery protocol end to end, as a simulation: a sender (the edge's `RelaySender`,
 * or a broken one) and a runner built on `RelayReceiver` talk over simulated sockets that delay
 * messages (in order), duplicate them, go down (everything in flight is lost), refuse dials for a
 * while, and, in the second property, a runner that restarts and forgets the call. Time is
 * simulated; both sides only see `nowMs`.
 *
 * Properties: every block reaches the engine exactly once and in order (no runner restart);
 * with restarts, every block is committed by an engine session that was fed it, nothing the
 * edge saw committed is ever sent again, and each session is fed in order without a hole. In
 * both, the stop handshake completes. A sender that forgets a block, or that replays committed
 * blocks, fails them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  RelayReceiver,
  RelaySender,
  decodeAudioFrame,
  encodeAudioFrame,
  newRelayReceiverCounters,
  parseEdgeToRunner,
  parseRunnerToEdge,
} from "../src/index.js";
import type { PendingBlock, RelayLinkState, RelayOpening, RelaySenderOptions, RelaySenderWake } from "../src/index.js";

/** What the simulation needs of a sender: `RelaySender`'s surface. */
interface SenderUnderTest {
  readonly open: boolean;
  readonly state: RelayLinkState;
  readonly finished: boolean;
  readonly pendingBlocks: number;
  readonly nextDueMs: number | undefined;
  connect(): boolean;
  dialFailed(nowMs: number): number | undefined;
  opened(nowMs: number): RelayOpening | undefined;
  socketLost(nowMs: number): number | undefined;
  push(seq: number, frame: ArrayBuffer, nowMs: number): PendingBlock | undefined;
  ack(seq: number, committedSeq: number | undefined, nowMs: number): number;
  stop(reason: string, graceMs: number, nowMs: number): string | undefined;
  tick(nowMs: number): RelaySenderWake | undefined;
}

type SenderFactory = (o: RelaySenderOptions) => SenderUnderTest;

const CALL = "CAsim";
/** Samples per block: small, the content does not matter here. */
const SAMPLES = 8;
const BLOCK_MS = 100;
const STEP_MS = 5;
const GRACE_MS = 60_000;
/** The simulation gives up after this much simulated time (the stop must be done by then). */
const HORIZON_MS = 120_000;

const OPTIONS: RelaySenderOptions = {
  start: {
    callSid: CALL,
    streamSid: "MZsim",
    accountSid: "ACsim",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: BLOCK_MS,
    tracks: ["inbound"],
    customParameters: {},
  },
  maxPendingBlocks: 1000,
  backoffMinMs: 20,
  backoffMaxMs: 400,
};

type FaultKind = "cut" | "duplicate" | "unreachable" | "restart";

interface Fault {
  readonly atMs: number;
  readonly kind: FaultKind;
  /** For `unreachable` and `restart`: how long dials fail, ms. */
  readonly forMs: number;
}

interface Scenario {
  readonly blocks: number;
  readonly seed: number;
  readonly maxDelayMs: number;
  readonly faults: readonly Fault[];
  /** Chance per engine tick that the engine commits everything fed so far. */
  readonly commitChance: number;
}

/** mulberry32: the simulation's own small deterministic randomness (delays, commits). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Wire = string | ArrayBuffer;

/** One direction of a simulated socket: messages in order, each due at its delivery time. */
class Lane<T> {
  private readonly queue: { atMs: number; data: T }[] = [];
  private lastAtMs = 0;

  constructor(private readonly delayMs: () => number) {}

  /** Sends `data` at `nowMs` (`times` copies: 2 for a duplicate); it arrives in order, after a delay. */
  send(nowMs: number, data: T, times: number): void {
    this.lastAtMs = Math.max(this.lastAtMs, nowMs + this.delayMs());
    for (let k = 0; k < times; k++) this.queue.push({ atMs: this.lastAtMs, data });
  }

  /** The next message due by `nowMs`, if any. */
  arrived(nowMs: number): T | undefined {
    return this.queue.length > 0 && this.queue[0]!.atMs <= nowMs ? this.queue.shift()!.data : undefined;
  }

  clear(): void {
    this.queue.length = 0;
  }
}

/** One simulated socket: two in-order lanes; down loses what is in flight. */
class Socket {
  up = true;
  readonly toRunner: Lane<Wire>;
  readonly toEdge: Lane<string>;
  /** The next message (either way) goes twice. */
  duplicateNext = false;

  constructor(delayMs: () => number) {
    this.toRunner = new Lane(delayMs);
    this.toEdge = new Lane(delayMs);
  }

  sendToRunner(nowMs: number, data: Wire): void {
    if (this.up) this.toRunner.send(nowMs, data, this.copies());
  }

  sendToEdge(nowMs: number, data: string): void {
    if (this.up) this.toEdge.send(nowMs, data, this.copies());
  }

  cut(): void {
    this.up = false;
    this.toRunner.clear();
    this.toEdge.clear();
  }

  private copies(): number {
    const n = this.duplicateNext ? 2 : 1;
    this.duplicateNext = false;
    return n;
  }
}

/** One engine session: the seqs it was fed, in order, and how far its words are final. */
interface EngineSession {
  readonly fed: number[];
  /** The last seq whose audio the engine is done with (-1: none). */
  committedThrough: number;
}

/** The runner's view of the call (`RunnerCall`, simulated). */
interface RunnerCallSim {
  readonly receiver: RelayReceiver;
  readonly session: EngineSession;
  socket: Socket | undefined;
}

interface Outcome {
  readonly sessions: readonly EngineSession[];
  readonly violations: readonly string[];
  readonly finished: boolean;
}

/** Runs one call through `scenario` with the sender `makeSender` builds. */
function simulate(makeSender: SenderFactory, scenario: Scenario): Outcome {
  const random = prng(scenario.seed);
  const sender = makeSender(OPTIONS);
  const counters = newRelayReceiverCounters();
  const sessions: EngineSession[] = [];
  const violations: string[] = [];
  const faults = [...scenario.faults].sort((a, b) => a.atMs - b.atMs);
  let socket: Socket | undefined;
  let runnerCall: RunnerCallSim | undefined;
  let runnerDownUntilMs = 0;
  let dialDoneAtMs: number | undefined;
  /** Seqs the edge has seen committed (acks it received): never to be sent again. */
  let edgeCommitted = -1;
  let nextBlock = 0;
  let stopped = false;
  const committedSample = (s: EngineSession) => (s.committedThrough + 1) * SAMPLES;

  const newSocket = () => new Socket(() => Math.floor(random() * (scenario.maxDelayMs + 1)));

  const edgeSend = (nowMs: number, data: Wire) => {
    if (typeof data !== "string") {
      const r = decodeAudioFrame(data);
      if (r.ok && r.frame.seq <= edgeCommitted) violations.push(`block ${r.frame.seq} sent after it was committed`);
    }
    socket?.sendToRunner(nowMs, data);
  };

  const socketDown = (nowMs: number) => {
    if (!socket) return;
    socket.cut();
    socket = undefined;
    sender.socketLost(nowMs);
    if (runnerCall) {
      runnerCall.socket = undefined;
      runnerCall.receiver.detached(nowMs);
    }
  };

  const runnerReceive = (nowMs: number, from: Socket, data: Wire) => {
    if (typeof data !== "string") {
      const r = decodeAudioFrame(data);
      if (!r.ok || !runnerCall) return;
      const call = runnerCall;
      const verdict = call.receiver.audio(r.frame.seq, r.frame.startSample, r.frame.pcm.length, nowMs);
      // the runner's guard never refuses what an edge playing by the rules sends
      if (verdict === "out_of_window" || verdict === "too_fast") violations.push(`block ${r.frame.seq}: ${verdict}`);
      if (verdict === "feed" || verdict === "gap") call.session.fed.push(r.frame.seq);
      from.sendToEdge(nowMs, call.receiver.ack(committedSample(call.session)));
      return;
    }
    const r = parseEdgeToRunner(data);
    if (!r.ok) return;
    const m = r.message;
    if (m.type === "start") {
      if (runnerCall) {
        runnerCall.socket = from;
        const ack = runnerCall.receiver.resume(committedSample(runnerCall.session));
        if (ack !== undefined) from.sendToEdge(nowMs, ack);
      } else {
        const session: EngineSession = { fed: [], committedThrough: m.resumeFromSeq - 1 };
        sessions.push(session);
        runnerCall = {
          receiver: new RelayReceiver(m, counters, {
            resumeGraceMs: GRACE_MS,
            guard: { relayBufferMs: OPTIONS.maxPendingBlocks * BLOCK_MS, startedAtMs: nowMs },
          }),
          session,
          socket: from,
        };
      }
    } else if (m.type === "stop" && runnerCall) {
      const call = runnerCall;
      if (!call.receiver.end()) return;
      // the engine says its last: everything fed is final
      call.session.committedThrough = call.session.fed.at(-1) ?? call.session.committedThrough;
      from.sendToEdge(nowMs, call.receiver.finalAck());
      runnerCall = undefined; // the runner forgets an ended call
    }
  };

  const edgeReceive = (nowMs: number, text: string) => {
    const r = parseRunnerToEdge(text);
    if (!r.ok || r.message.type !== "ack") return;
    const { seq, committedSeq } = r.message;
    const committed = Math.min(seq, committedSeq ?? seq);
    // every block the edge now learns is committed was fed to the session that says so
    const session = sessions.at(-1)!;
    for (let s = edgeCommitted + 1; s <= committed; s++) {
      if (!session.fed.includes(s)) violations.push(`block ${s} acknowledged as committed but never fed`);
    }
    edgeCommitted = Math.max(edgeCommitted, committed);
    sender.ack(seq, committedSeq, nowMs);
  };

  const dial = (nowMs: number) => {
    dialDoneAtMs = nowMs + 1 + Math.floor(random() * 20);
  };

  const sendOpening = (nowMs: number, opening: RelayOpening) => {
    edgeSend(nowMs, opening.start);
    for (const b of opening.blocks) edgeSend(nowMs, b.frame);
    if (opening.stop !== undefined) edgeSend(nowMs, opening.stop);
  };

  if (sender.connect()) dial(0);
  for (let now = 0; now <= HORIZON_MS; now += STEP_MS) {
    while (faults.length > 0 && faults[0]!.atMs <= now) {
      const f = faults.shift()!;
      if (f.kind === "duplicate") {
        if (socket) socket.duplicateNext = true;
      } else {
        socketDown(now);
        if (f.kind === "unreachable") runnerDownUntilMs = Math.max(runnerDownUntilMs, now + f.forMs);
        if (f.kind === "restart") {
          runnerCall = undefined; // the process is gone, its engine session with it
          runnerDownUntilMs = Math.max(runnerDownUntilMs, now + f.forMs);
        }
      }
    }
    if (socket) {
      const s = socket;
      for (let m = s.toRunner.arrived(now); m !== undefined && s.up; m = s.toRunner.arrived(now))
        runnerReceive(now, s, m);
      for (let m = s.toEdge.arrived(now); m !== undefined && s.up; m = s.toEdge.arrived(now)) edgeReceive(now, m);
    }
    if (!stopped && nextBlock * BLOCK_MS <= now) {
      if (nextBlock < scenario.blocks) {
        const frame = encodeAudioFrame({
          callId: CALL,
          seq: nextBlock,
          startSample: nextBlock * SAMPLES,
          sampleRateHz: 8000,
          pcm: new Int16Array(SAMPLES),
        });
        sender.push(nextBlock, frame, now);
        if (sender.open) edgeSend(now, frame);
        nextBlock++;
      } else {
        stopped = true;
        const stopText = sender.stop("caller_hung_up", GRACE_MS, now);
        if (stopText !== undefined) edgeSend(now, stopText);
        else if (sender.connect()) dial(now);
      }
    }
    // the engine: now and then its words become final (a final: the runner acks the new commit point)
    if (runnerCall && now % BLOCK_MS === 0 && random() < scenario.commitChance) {
      const call = runnerCall;
      call.session.committedThrough = call.session.fed.at(-1) ?? call.session.committedThrough;
      call.socket?.sendToEdge(now, call.receiver.ack(committedSample(call.session)));
    }
    if (dialDoneAtMs !== undefined && dialDoneAtMs <= now) {
      dialDoneAtMs = undefined;
      if (now < runnerDownUntilMs) {
        sender.dialFailed(now);
      } else {
        const opening = sender.opened(now);
        if (opening) {
          socket = newSocket();
          sendOpening(now, opening);
        }
      }
    }
    const due = sender.nextDueMs;
    if (due !== undefined && due <= now) {
      const wake = sender.tick(now);
      if (wake === "dial") dial(now);
      if (wake === "give_up") violations.push("the stop gave up");
    }
    if (sender.finished) break;
  }
  return { sessions, violations, finished: sender.finished };
}

/** Each session is fed consecutive seqs, in order; returns what is wrong. */
function holesIn(sessions: readonly EngineSession[]): string[] {
  const problems: string[] = [];
  sessions.forEach((s, i) => {
    for (let k = 1; k < s.fed.length; k++) {
      if (s.fed[k] !== s.fed[k - 1]! + 1) problems.push(`session ${i} fed ${s.fed[k - 1]} then ${s.fed[k]}`);
    }
  });
  return problems;
}

const faultArb = (kinds: readonly FaultKind[], untilMs: number) =>
  fc.record({
    atMs: fc.integer({ min: 0, max: untilMs }),
    kind: fc.constantFrom(...kinds),
    forMs: fc.integer({ min: 0, max: 1500 }),
  });

/** A call of 1..40 blocks, faults up to `tailMs` after its last block. */
function scenarioArb(kinds: readonly FaultKind[], tailMs: number) {
  return fc.integer({ min: 1, max: 40 }).chain((blocks) =>
    fc.record({
      blocks: fc.constant(blocks),
      seed: fc.integer(),
      maxDelayMs: fc.integer({ min: 0, max: 150 }),
      faults: fc.array(faultArb(kinds, Math.max(0, (blocks - 1) * BLOCK_MS + tailMs)), { maxLength: 10 }),
      commitChance: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  );
}

/**
 * No runner restart, faults while the call streams: the one engine session hears every block
 * exactly once, in order; nothing the edge saw committed is sent again; the stop completes.
 * (Once the runner has ended the call it forgets it, like a restart: a final ack lost after
 * that sends the edge's uncommitted tail to a new session. The second property covers that.)
 */
function exactlyOnce(makeSender: SenderFactory) {
  return fc.property(scenarioArb(["cut", "duplicate", "unreachable"], 99), (scenario) => {
    const out = simulate(makeSender, scenario);
    const fed = out.sessions.flatMap((s) => s.fed);
    return (
      out.violations.length === 0 &&
      out.finished &&
      out.sessions.length === 1 &&
      fed.length === scenario.blocks &&
      fed.every((seq, i) => seq === i)
    );
  });
}

/**
 * With restarts (the runner forgets the call): no hole in any session, every block committed by
 * a session that was fed it, nothing committed sent again, the stop completes.
 */
function nothingLost(makeSender: SenderFactory) {
  // faults go on past the stop: its acks, the runner ending the call
  return fc.property(scenarioArb(["cut", "duplicate", "unreachable", "restart"], 1000), (scenario) => {
    const out = simulate(makeSender, scenario);
    return out.violations.length === 0 && holesIn(out.sessions).length === 0 && out.finished;
  });
}

const realSender: SenderFactory = (o) => new RelaySender(o);

/** A sender that hands everything to a real one; the broken ones below change one thing. */
class DelegatingSender implements SenderUnderTest {
  protected readonly inner: RelaySender;
  constructor(o: RelaySenderOptions) {
    this.inner = new RelaySender(o);
  }
  get open() {
    return this.inner.open;
  }
  get state() {
    return this.inner.state;
  }
  get finished() {
    return this.inner.finished;
  }
  get pendingBlocks() {
    return this.inner.pendingBlocks;
  }
  get nextDueMs() {
    return this.inner.nextDueMs;
  }
  connect() {
    return this.inner.connect();
  }
  dialFailed(nowMs: number) {
    return this.inner.dialFailed(nowMs);
  }
  opened(nowMs: number) {
    return this.inner.opened(nowMs);
  }
  socketLost(nowMs: number) {
    return this.inner.socketLost(nowMs);
  }
  push(seq: number, frame: ArrayBuffer, nowMs: number) {
    return this.inner.push(seq, frame, nowMs);
  }
  ack(seq: number, committedSeq: number | undefined, nowMs: number) {
    return this.inner.ack(seq, committedSeq, nowMs);
  }
  stop(reason: string, graceMs: number, nowMs: number) {
    return this.inner.stop(reason, graceMs, nowMs);
  }
  tick(nowMs: number) {
    return this.inner.tick(nowMs);
  }
}

/** Broken on purpose: on a reconnect it forgets every third block it should replay. */
class ForgetfulSender extends DelegatingSender {
  override opened(nowMs: number) {
    const opening = this.inner.opened(nowMs);
    return opening && { ...opening, blocks: opening.blocks.filter((b) => b.seq % 3 !== 1) };
  }
}

/**
 * Broken on purpose: never lets go of a block, so a reconnect replays committed ones. It still
 * knows when the runner has committed everything, so the stop completes and only the replay
 * gives it away.
 */
class ClingingSender extends DelegatingSender {
  private committed = -1;
  private lastSeq = -1;
  private stopOut = false;
  override push(seq: number, frame: ArrayBuffer, nowMs: number) {
    this.lastSeq = seq;
    return this.inner.push(seq, frame, nowMs);
  }
  override ack(seq: number, committedSeq: number | undefined, nowMs: number) {
    this.committed = Math.max(this.committed, Math.min(seq, committedSeq ?? seq));
    return this.inner.ack(seq, -1, nowMs);
  }
  override opened(nowMs: number) {
    const opening = this.inner.opened(nowMs);
    if (opening?.stop !== undefined) this.stopOut = true;
    return opening;
  }
  override stop(reason: string, graceMs: number, nowMs: number) {
    const text = this.inner.stop(reason, graceMs, nowMs);
    if (text !== undefined) this.stopOut = true;
    return text;
  }
  override get finished() {
    return this.stopOut && this.committed >= this.lastSeq;
  }
  override tick(nowMs: number) {
    return this.finished ? undefined : this.inner.tick(nowMs);
  }
}

describe("relay delivery (simulated sockets, faults, time)", () => {
  it("every block reaches the engine exactly once, in order, through cuts, duplicates and an unreachable runner", () => {
    fc.assert(exactlyOnce(realSender), { numRuns: 150 });
  });

  it("a runner that restarts and forgets the call: nothing uncommitted is lost, nothing committed is replayed", () => {
    fc.assert(nothingLost(realSender), { numRuns: 150 });
  });

  it("fails for a sender that forgets blocks it should replay", () => {
    const r = fc.check(
      exactlyOnce((o) => new ForgetfulSender(o)),
      { numRuns: 300 },
    );
    expect(r.failed).toBe(true);
    // the failing run lost a block: no engine session was fed it
    const [scenario] = r.counterexample!;
    const fed = new Set(simulate((o) => new ForgetfulSender(o), scenario).sessions.flatMap((s) => s.fed));
    expect(Array.from({ length: scenario.blocks }, (_, seq) => seq).filter((seq) => !fed.has(seq))).not.toEqual([]);
  });

  it("fails for a sender that replays committed blocks", () => {
    const r = fc.check(
      nothingLost((o) => new ClingingSender(o)),
      { numRuns: 300 },
    );
    expect(r.failed).toBe(true);
    const out = simulate((o) => new ClingingSender(o), r.counterexample![0]);
    expect(out.violations.join("; ")).toMatch(/sent after it was committed/);
  });

  it("the simulation itself: a quiet run feeds every block once and completes the stop", () => {
    const out = simulate(realSender, { blocks: 10, seed: 1, maxDelayMs: 20, faults: [], commitChance: 0.5 });
    expect(out).toMatchObject({ violations: [], finished: true });
    expect(out.sessions.map((s) => s.fed)).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
  });
});
