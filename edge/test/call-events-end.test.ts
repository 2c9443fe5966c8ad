/**
 * What a call's event stream leaves running after the call ends (`edge/src/events/call-events.ts`),
 * with plain values: a pending timer keeps the call's Durable Object in memory, so one runs only
 * while a subscriber is still reading.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CallEventStream } from "../src/events/call-events.js";
import { Fanout } from "../src/events/subscribers.js";

// the stream's subscribe() is workerd's (WebSocketPair, a 101 Response with its socket); these
// tests never subscribe, so the Node program only needs the two names to typecheck
declare global {
  var WebSocketPair: new () => Record<0 | 1, WebSocket & { accept(): void }>;
  interface ResponseInit {
    webSocket?: WebSocket;
  }
}

const socket = () => ({ send: () => {}, close: () => {} });

describe("after the call ends", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("leaves no timer running when nobody subscribed", async () => {
    const stream = new CallEventStream({
      limits: { windowEvents: 8, bufferEvents: 8 },
      hub: () => Promise.resolve(new Response(null, { status: 204 })),
      log: () => {},
    });
    stream.callEnded("CA1", "caller_hung_up");
    await vi.advanceTimersByTimeAsync(1000); // the hub's batch goes out; the 30 s window would not have ended
    expect(stream.recent()).toMatchObject([{ type: "call.ended", n: 1 }]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("a fan-out", () => {
  it("tells its owner when its last subscriber goes, however it went", () => {
    const onEmpty = vi.fn();
    const fanout = new Fanout({ windowEvents: 1, bufferEvents: 4 }, onEmpty);
    const closedByEdge = fanout.add(socket());
    const left = fanout.add(socket());
    closedByEdge.close(1000, "call ended");
    expect(onEmpty).not.toHaveBeenCalled();
    left.gone();
    expect(onEmpty).toHaveBeenCalledTimes(1);
    left.gone(); // idempotent: gone once
    expect(onEmpty).toHaveBeenCalledTimes(1);
  });
});
