/**
 * Runner events at the edge, on real workerd: the relay's parse validates each transcript event
 * once where it enters; a bad one is dropped and counted (`eventStream.invalid`), not taken for a
 * relay protocol error, and the call's stream goes on with the good ones.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { encodeControl } from "@ozen/shared";
import { RelayServer, nullEngine } from "@ozen/stt-runner";
import { RELAY_SECRET, TwilioCall, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { Subscriber } from "./transcripts.js";

/** Relay text frames to each call's edge, by call. */
const sends = new Map<string, (text: string) => void>();
let runner: RelayServer;
let edge: TestEdge;

beforeAll(async () => {
  runner = new RelayServer({
    engine: nullEngine,
    port: 0,
    relaySecret: RELAY_SECRET,
    log: () => {},
    listenerFor: (start, send) => {
      sends.set(start.callSid, send);
      return { interim() {}, final() {}, failed() {} };
    },
  });
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${await runner.listen()}/relay` });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

it("drops an invalid runner event, counting it once as invalid, and delivers the valid ones", async () => {
  const call = await TwilioCall.start(edge);
  const sub = await Subscriber.connect(edge, `/calls/${call.callSid}/events?since=0`);
  const playing = call.play(testAudio(50, 7), { speed: 1 });
  const send = await waitFor("the call at the runner", () => sends.get(call.callSid));
  const started = { v: 1, type: "call.started", callSid: call.callSid, wallMs: Date.now(), engine: "null" } as const;
  // a partial with no text: the schema's parser refuses it
  send(JSON.stringify({ v: 1, type: "event", event: { ...started, type: "partial" } }));
  send(encodeControl({ type: "event", event: started }));
  await waitFor("call.started at the subscriber", () => sub.of("call.started").length === 1);
  const s = await edge.callStats(call.callSid);
  expect(s.eventStream!.invalid).toBe(1);
  expect(s.relay.protocolErrors).toBe(0);
  expect(s.events).toEqual({ "call.started": 1 });
  expect(sub.events.map((r) => r.e.type)).toEqual(["call.started"]);
  await playing;
  expect(await call.hangUp()).toBe(1000);
});
