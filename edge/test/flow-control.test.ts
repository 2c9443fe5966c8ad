/**
 * The subscriber flow-control rule (`edge/src/events/subscribers.ts`) with plain values: what is sent,
 * what waits, what is dropped in which order, and when a subscriber is closed instead.
 */
import { describe, expect, it } from "vitest";
import { Fanout, TOO_SLOW_CLOSE_CODE, parseAck } from "../src/events/subscribers.js";
import type { Deliverable, Subscriber } from "../src/events/subscribers.js";

class FakeSocket {
  readonly sent: string[] = [];
  closed: [number, string] | undefined;
  send(text: string): void {
    this.sent.push(text);
  }
  close(code: number, reason: string): void {
    this.closed = [code, reason];
  }
}

const partial = (u: number, k: number): Deliverable => ({ text: `p${u}.${k}`, type: "partial", utteranceId: `u${u}` });
const meaningful = (u: number): Deliverable => ({ text: `m${u}`, type: "meaningful", utteranceId: `u${u}` });
const final = (u: number): Deliverable => ({ text: `f${u}`, type: "final", utteranceId: `u${u}` });

function setup(windowEvents: number, bufferEvents: number): { fanout: Fanout; socket: FakeSocket; sub: Subscriber } {
  const fanout = new Fanout({ windowEvents, bufferEvents });
  const socket = new FakeSocket();
  return { fanout, socket, sub: fanout.add(socket) };
}

/** Acknowledges everything sent so far. */
function ackAll(sub: Subscriber, socket: FakeSocket): void {
  sub.onMessage(JSON.stringify({ ack: socket.sent.length }));
}

describe("subscriber flow control", () => {
  it("sends up to the window, then buffers until acknowledged, in order", () => {
    const { fanout, socket, sub } = setup(2, 10);
    for (let k = 0; k < 5; k++) fanout.publish(partial(1, k));
    expect(socket.sent).toEqual(["p1.0", "p1.1"]);
    expect(sub.counters.queued).toBe(3);
    sub.onMessage('{"ack":1}');
    expect(socket.sent).toEqual(["p1.0", "p1.1", "p1.2"]);
    ackAll(sub, socket);
    expect(socket.sent).toEqual(["p1.0", "p1.1", "p1.2", "p1.3", "p1.4"]);
    expect(sub.counters).toMatchObject({ sent: 5, acked: 3, queued: 0, dropped: {} });
  });

  it("drops a superseded partial first, then the oldest partial or meaningful; keeps finals", () => {
    const { fanout, socket, sub } = setup(1, 4);
    fanout.publish(partial(0, 0)); // in flight
    fanout.publish(final(1));
    fanout.publish(partial(2, 0));
    fanout.publish(meaningful(3));
    fanout.publish(partial(3, 0)); // buffer full: f1 p2.0 m3 p3.0
    fanout.publish(partial(3, 1)); // m3 and p3.0 are superseded by it: the oldest of them goes
    expect(sub.counters).toMatchObject({ dropped: { meaningful: 1 }, droppedSuperseded: 1 });
    fanout.publish(final(4)); // p3.0 is superseded by p3.1
    expect(sub.counters).toMatchObject({ dropped: { meaningful: 1, partial: 1 }, droppedSuperseded: 2 });
    fanout.publish(final(5)); // nothing superseded: the oldest droppable, p2.0
    expect(sub.counters.dropped).toEqual({ meaningful: 1, partial: 2 });
    for (let i = 0; i < 5; i++) ackAll(sub, socket);
    expect(socket.sent).toEqual(["p0.0", "f1", "p3.1", "f4", "f5"]);
    expect(fanout.totals.dropped).toEqual({ meaningful: 1, partial: 2 });
  });

  it("drops an arriving partial when the buffer holds only finals", () => {
    const { fanout, socket, sub } = setup(1, 2);
    fanout.publish(final(1));
    fanout.publish(final(2));
    fanout.publish(final(3));
    fanout.publish(partial(4, 0));
    expect(sub.counters.dropped).toEqual({ partial: 1 });
    expect(socket.closed).toBeUndefined();
  });

  it("closes with 4008 when a final cannot wait, naming the finals pending", () => {
    const { fanout, socket, sub } = setup(1, 2);
    for (let u = 1; u <= 4; u++) fanout.publish(final(u));
    expect(socket.closed).toEqual([TOO_SLOW_CLOSE_CODE, "too slow: 3 finals pending; resume from records"]);
    expect(sub.isOpen).toBe(false);
    expect(fanout.size).toBe(0);
    expect(fanout.totals.closedTooSlow).toBe(1);
    expect(fanout.list()[0]!.closed).toBe("4008 too slow: 3 finals pending; resume from records");
    fanout.publish(final(5)); // nothing more goes to a closed subscriber
    expect(socket.sent).toEqual(["f1"]);
  });

  it("paces a replay by the window without counting it against the buffer", () => {
    const { socket, sub } = setup(2, 1);
    sub.replay([final(1), final(2), final(3), final(4), final(5)]);
    expect(socket.sent).toEqual(["f1", "f2"]);
    sub.offer(partial(6, 0)); // live events wait behind the replay
    for (let i = 0; i < 3; i++) ackAll(sub, socket);
    expect(socket.sent).toEqual(["f1", "f2", "f3", "f4", "f5", "p6.0"]);
    expect(socket.closed).toBeUndefined();
  });

  it("closes with 1000 once drained when the stream is over", () => {
    const { fanout, socket, sub } = setup(1, 10);
    fanout.publish(final(1));
    fanout.publish(final(2));
    fanout.closeWhenDrained(1000, "call ended");
    expect(socket.closed).toBeUndefined();
    ackAll(sub, socket);
    expect(socket.sent).toEqual(["f1", "f2"]);
    expect(socket.closed).toEqual([1000, "call ended"]);
  });

  it("closes a subscriber still behind when the stream is over, with 4008", () => {
    const { fanout, socket, sub } = setup(1, 10);
    fanout.publish(final(1));
    fanout.publish(partial(2, 0));
    fanout.publish(final(2));
    fanout.closeWhenDrained(1000, "call ended");
    fanout.closeStragglers();
    expect(socket.closed).toEqual([TOO_SLOW_CLOSE_CODE, "too slow: 1 finals pending; resume from records"]);
    expect(sub.isOpen).toBe(false);
  });

  it("ignores an ack that is not {ack:N} within what was sent, and counts it", () => {
    const { fanout, socket, sub } = setup(1, 10);
    fanout.publish(final(1));
    fanout.publish(final(2));
    for (const bad of ["hello", '{"ack":5}', '{"ack":-1}', '{"ack":"1"}', "[1]"]) sub.onMessage(bad);
    expect(socket.sent).toEqual(["f1"]);
    expect(fanout.totals.badAcks).toBe(5);
    expect([parseAck('{"ack":3}'), parseAck('{"ack":1.5}'), parseAck(new ArrayBuffer(1))]).toEqual([
      3,
      undefined,
      undefined,
    ]);
  });
});
