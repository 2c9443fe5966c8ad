/** The edge's side of the relay delivery protocol (`RelaySender`), with plain values. */
import { describe, expect, it } from "vitest";
import { RelaySender, parseEdgeToRunner } from "../src/index.js";
import type { PendingBlock, RelaySenderOptions } from "../src/index.js";

const START: RelaySenderOptions["start"] = {
  callSid: "CA1",
  streamSid: "MZ1",
  accountSid: "AC1",
  sampleRateHz: 8000,
  encoding: "pcm16le",
  blockMs: 100,
  tracks: ["inbound"],
  customParameters: {},
};

function sender(o: Partial<Omit<RelaySenderOptions, "start">> = {}): RelaySender {
  return new RelaySender({ start: START, maxPendingBlocks: 100, backoffMinMs: 50, backoffMaxMs: 200, ...o });
}

const frame = () => new ArrayBuffer(8);

/** The parsed text frame (start or stop) the sender produced. */
function control(text: string | undefined) {
  const r = parseEdgeToRunner(text ?? "");
  if (!r.ok) throw new Error(r.message);
  return r.message;
}

const seqs = (blocks: readonly PendingBlock[]) => blocks.map((b) => b.seq);

describe("resume point and replay", () => {
  it("a new call starts from 0 and sends the blocks kept while dialling", () => {
    const s = sender();
    expect(s.connect()).toBe(true);
    for (let seq = 0; seq < 3; seq++) s.push(seq, frame(), 1000);
    const opening = s.opened(1010)!;
    expect(control(opening.start)).toMatchObject({ type: "start", callSid: "CA1", resumeFromSeq: 0 });
    expect(seqs(opening.blocks)).toEqual([0, 1, 2]);
    expect(opening.stop).toBeUndefined();
    expect(s.stats).toMatchObject({ connects: 1, blocksSent: 3, blocksReplayed: 0 });
  });

  it("resumes from the oldest uncommitted block and replays only what was not committed", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    for (let seq = 0; seq < 5; seq++) s.push(seq, frame(), seq * 100);
    const released: number[] = [];
    expect(s.ack(4, 2, 450, (b) => released.push(b.seq))).toBe(3);
    expect(released).toEqual([0, 1, 2]);
    expect(s.pendingBlocks).toBe(2);
    s.socketLost(500);
    expect(s.tick(550)).toBe("dial");
    const opening = s.opened(560)!;
    expect(control(opening.start)).toMatchObject({ resumeFromSeq: 3 });
    expect(seqs(opening.blocks)).toEqual([3, 4]);
    expect(s.stats).toMatchObject({ connects: 2, disconnects: 1, blocksSent: 7, blocksReplayed: 2, blocksAcked: 3 });
  });

  it("resumes at the next seq when every block is committed", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    for (let seq = 0; seq < 4; seq++) s.push(seq, frame(), 0);
    s.ack(3, undefined, 10);
    s.socketLost(20);
    s.tick(70);
    const opening = s.opened(80)!;
    expect(control(opening.start)).toMatchObject({ resumeFromSeq: 4 });
    expect(opening.blocks).toEqual([]);
  });

  it("a commit is never past the arrival it comes with", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    for (let seq = 0; seq < 4; seq++) s.push(seq, frame(), 0);
    expect(s.ack(1, 3, 10)).toBe(2);
    expect(s.pendingBlocks).toBe(2);
  });

  it("drops the oldest block when the buffer is full and says which", () => {
    const s = sender({ maxPendingBlocks: 3 });
    s.connect();
    const lost = [0, 1, 2, 3, 4].map((seq) => s.push(seq, frame(), 0)?.seq);
    expect(lost).toEqual([undefined, undefined, undefined, 0, 1]);
    expect(s.stats.blocksDropped).toBe(2);
    expect(seqs(s.opened(10)!.blocks)).toEqual([2, 3, 4]);
  });

  it("counts as dropped only blocks that fell out unsent; sent ones pushed out before commit are evicted", () => {
    const s = sender({ maxPendingBlocks: 3 });
    s.connect();
    s.opened(0);
    // the runner has every block (sent on an open link) but commits none: nothing is lost audio
    for (let seq = 0; seq < 5; seq++) s.push(seq, frame(), 1 + seq);
    expect(s.stats).toMatchObject({ blocksSent: 5, blocksDropped: 0, blocksEvicted: 2 });
    expect(s.unacknowledgedBlocks).toBe(3);
    // the link goes down: blocks kept while it is away were never sent, and those that fall out are lost
    s.socketLost(10);
    for (let seq = 5; seq < 9; seq++) s.push(seq, frame(), 20);
    expect(s.stats).toMatchObject({ blocksDropped: 1, blocksEvicted: 5 });
    expect(s.unacknowledgedBlocks).toBe(0);
    expect(s.pendingBlocks).toBe(3);
  });

  it("the unacknowledged gauge is the blocks sent and not yet committed", () => {
    const s = sender();
    s.connect();
    s.push(0, frame(), 0); // kept while dialling: not sent
    expect(s.unacknowledgedBlocks).toBe(0);
    s.opened(5);
    expect(s.unacknowledgedBlocks).toBe(1);
    s.push(1, frame(), 10);
    s.push(2, frame(), 10);
    expect(s.unacknowledgedBlocks).toBe(3);
    s.ack(2, 1, 20);
    expect(s.unacknowledgedBlocks).toBe(1);
    s.ack(2, 2, 30);
    expect(s.unacknowledgedBlocks).toBe(0);
  });

  it("a link that goes on from a persisted seq starts there and stops at the seq before it", () => {
    const s = sender({ firstSeq: 42 });
    s.connect();
    s.stop("edge_restarted", 1000, 0);
    const opening = s.opened(10)!;
    expect(control(opening.start)).toMatchObject({ resumeFromSeq: 42 });
    expect(control(opening.stop)).toMatchObject({ type: "stop", lastSeq: 41 });
  });

  it("counts a block as sent when it is pushed on an open link, not while dialling", () => {
    const s = sender();
    s.connect();
    s.push(0, frame(), 0);
    expect(s.open).toBe(false);
    expect(s.stats.blocksSent).toBe(0);
    s.opened(5);
    s.push(1, frame(), 10);
    expect(s.open).toBe(true);
    expect(s.stats.blocksSent).toBe(2);
  });
});

describe("backoff as due times", () => {
  it("doubles from the minimum to the maximum on failed dials", () => {
    const s = sender();
    expect(s.connect()).toBe(true);
    expect(s.connect()).toBe(false);
    const due: number[] = [];
    let now = 0;
    for (let i = 0; i < 5; i++) {
      const at = s.dialFailed(now)!;
      due.push(at - now);
      expect(s.nextDueMs).toBe(at);
      expect(s.tick(at - 1)).toBeUndefined();
      expect(s.tick(at)).toBe("dial");
      expect(s.nextDueMs).toBeUndefined();
      now = at + 7; // the dial itself takes a while
    }
    expect(due).toEqual([50, 100, 200, 200, 200]);
    expect(s.stats.connectFailures).toBe(5);
  });

  it("keeps backing off for a runner that accepts and at once closes", () => {
    const s = sender();
    s.connect();
    const delays: number[] = [];
    let now = 0;
    for (let i = 0; i < 4; i++) {
      s.opened(now);
      const at = s.socketLost(now)!;
      delays.push(at - now);
      s.tick(at);
      now = at;
    }
    expect(delays).toEqual([50, 100, 200, 200]);
    expect(s.stats.disconnects).toBe(4);
  });

  it("resets to the minimum once a working link acknowledges a new block", () => {
    const s = sender();
    s.connect();
    s.dialFailed(0);
    s.tick(50);
    s.dialFailed(60); // 100 ms
    s.tick(160);
    s.opened(170);
    s.push(0, frame(), 180);
    s.ack(0, undefined, 190);
    expect(s.socketLost(300)).toBe(350);
  });

  it("does not redial or wake a closed link", () => {
    const s = sender();
    s.connect();
    s.close();
    expect(s.dialFailed(0)).toBeUndefined();
    expect(s.opened(0)).toBeUndefined();
    expect(s.socketLost(0)).toBeUndefined();
    expect(s.nextDueMs).toBeUndefined();
    expect(s.tick(1_000_000)).toBeUndefined();
    expect(s.connect()).toBe(false);
  });
});

describe("the stop handshake", () => {
  it("on an open link: the stop goes at once, done when every block is committed", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    for (let seq = 0; seq < 3; seq++) s.push(seq, frame(), 0);
    expect(control(s.stop("caller_hung_up", 60_000, 100))).toMatchObject({
      type: "stop",
      reason: "caller_hung_up",
      lastSeq: 2,
    });
    expect(s.finished).toBe(false);
    s.ack(2, 1, 110);
    expect(s.finished).toBe(false);
    s.ack(2, 2, 120);
    expect(s.finished).toBe(true);
  });

  it("on a link that is away: the next opening carries the stop after the replay", () => {
    const s = sender();
    s.connect();
    s.push(0, frame(), 0);
    expect(s.stop("twilio_disconnected", 60_000, 10)).toBeUndefined();
    expect(s.finished).toBe(false);
    const opening = s.opened(20)!;
    expect(seqs(opening.blocks)).toEqual([0]);
    expect(control(opening.stop)).toMatchObject({ type: "stop", lastSeq: 0 });
    s.ack(0, undefined, 30);
    expect(s.finished).toBe(true);
  });

  it("a call with no audio is done as soon as the stop is out", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    expect(control(s.stop("caller_hung_up", 1000, 0))).toMatchObject({ lastSeq: -1 });
    expect(s.stop("again", 1000, 0)).toBeUndefined();
    expect(s.finished).toBe(true);
  });

  it("gives up at the end of the grace and reports the blocks never committed", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    for (let seq = 0; seq < 4; seq++) s.push(seq, frame(), 0);
    s.ack(3, 1, 50);
    s.stop("caller_hung_up", 5000, 100);
    s.socketLost(200);
    // the redial comes first, then the deadline
    expect(s.nextDueMs).toBe(250);
    expect(s.tick(250)).toBe("dial");
    s.dialFailed(260);
    expect(s.nextDueMs).toBe(360);
    s.tick(360);
    s.dialFailed(370);
    s.tick(570);
    s.dialFailed(580);
    expect(s.nextDueMs).toBe(780);
    expect(s.tick(5099)).toBe("dial");
    s.dialFailed(5099);
    expect(s.nextDueMs).toBe(5100);
    expect(s.tick(5100)).toBe("give_up");
    expect(s.state).toBe("closed");
    expect(s.pendingBlocks).toBe(2);
    expect(s.tick(6000)).toBeUndefined();
  });
});

describe("round trips", () => {
  it("times a block from its last send to the first ack that covers it", () => {
    const s = sender();
    s.connect();
    s.opened(0);
    s.push(0, frame(), 1000);
    s.push(1, frame(), 1100);
    s.ack(0, -1, 1007);
    s.ack(0, 0, 1050); // the same arrival again (commit moved): not timed twice
    expect(s.rtt.count).toBe(1);
    s.socketLost(1120);
    s.tick(1170);
    s.opened(1200); // block 1 is replayed: timed from the replay
    s.ack(1, 1, 1209);
    expect(s.rtt.count).toBe(2);
    expect(s.rtt.max).toBe(9);
    expect(s.rttHistogram).toEqual({ "7": 1, "9": 1 });
  });

  it("does not time a block that was never sent", () => {
    const s = sender();
    s.connect();
    s.push(0, frame(), 0);
    s.ack(0, 0, 10);
    expect(s.rtt.count).toBe(0);
  });
});
