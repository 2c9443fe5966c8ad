/**
 * The whole path: a simulated Twilio call -> the edge on workerd -> the runner with the Google
 * engine (official client) -> a Speech service speaking Google's protos on loopback -> transcript
 * events back through the relay to the call's Durable Object.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { RelayServer, TranscriptForwarder } from "../../stt-runner/src/index.js";
import { GoogleEngine } from "../../stt-runner/src/engines/google/engine.js";
import { loadGoogleConfig } from "../../stt-runner/src/engines/google/config.js";
import { startSpeechServer } from "@ozen/stt-runner/testing";
import type { SpeechServer } from "@ozen/stt-runner/testing";
import { placeCall } from "../../tools/src/simulator.js";
import type { LocalEdge } from "../scripts/local-edge.js";
import { API, AUTH, PUBLIC, RELAY_SECRET, startEdge, testAudio, waitFor } from "./harness.js";

let speech: SpeechServer;
let engine: GoogleEngine;
let runner: RelayServer;
let edge: LocalEdge;

beforeAll(async () => {
  speech = await startSpeechServer();
  engine = new GoogleEngine(loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`, GOOGLE_INSECURE: "true" }));
  runner = new RelayServer({
    engine,
    port: 0,
    relaySecret: RELAY_SECRET,
    log: () => {},
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
  });
  edge = await startEdge(await runner.listen());
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
  await engine?.close();
  speech?.close();
});

it("brings Google's partials and final for a Twilio call back to the call's Durable Object", async () => {
  const r = await placeCall({ edgeUrl: edge.url, publicUrl: PUBLIC, authToken: AUTH, audio: testAudio(1.5), speed: 2 });
  const events = async () =>
    (
      (await (
        await fetch(`${edge.url}/calls/${r.callSid}/events`, { headers: { Authorization: `Bearer ${API}` } })
      ).json()) as {
        events: any[];
      }
    ).events;
  await waitFor(async () => (await events()).some((e) => e.type === "call.ended"), 15_000, "call.ended at the edge");
  const all = await events();
  expect(all.map((e) => e.type)).toEqual(["call.started", "partial", "final", "call.ended"]);
  const partial = all[1]!;
  expect(partial).toMatchObject({
    v: 1,
    callSid: r.callSid,
    utteranceId: `${r.callSid}:u1`,
    text: "שלום",
    audioEndMs: 300,
  });
  expect(typeof partial.latencyMs).toBe("number");
  expect(all[2]).toMatchObject({
    text: "שלום עולם.",
    rawText: "שלום עולם",
    stable: true,
    audioStartMs: 0,
    audioEndMs: 1500,
    engine: "google-v1",
  });
  // what Google heard: the config, then the whole call in 100 ms LINEAR16 requests
  const heard = speech.seen.at(-1)!;
  expect(heard.requests[0].streaming_config.config).toMatchObject({ language_code: "he-IL", sample_rate_hertz: 8000 });
  expect(heard.requests.slice(1).reduce((n: number, q: any) => n + q.audio_content.length, 0)).toBe(1.5 * 8000 * 2);
});
