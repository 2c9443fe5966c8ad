/**
 * One contract, every engine (null, Google on loopback, the whisper worker, failover and final
 * pass around them): fed a call and ended, an engine gives finals in call order within the audio
 * it was fed, never moves its commit point back or past that audio, and says nothing once `end()`
 * has resolved.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Engine, EngineFinal } from "../src/engines/engine.js";
import { FailoverEngine, loadFailoverConfig } from "../src/engines/failover.js";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { GoogleEngine } from "../src/engines/google/engine.js";
import { nullEngine } from "../src/engines/null.js";
import { WhisperEngine } from "../src/engines/whisper/engine.js";
import { FinalPassEngine } from "../src/engines/whisper/final-pass.js";
import { startSpeechServer } from "../src/testing/google-grpc.js";
import type { SpeechServer } from "../src/testing/google-grpc.js";
import {
  callOf,
  callStart,
  loadCallAudio,
  play,
  sleep,
  testWhisperConfig,
  whisperSkipReason,
} from "./whisper-helpers.js";

const skip = whisperSkipReason();

let speech: SpeechServer;
let whisper: WhisperEngine;
const closers: (() => Promise<void>)[] = [];

function google(): GoogleEngine {
  const g = new GoogleEngine(
    loadGoogleConfig({
      GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`,
      GOOGLE_INSECURE: "true",
      GOOGLE_LANGUAGE: "en-US",
      GOOGLE_RETRY_BUDGET: "0",
    }),
  );
  closers.push(() => g.close());
  return g;
}

const engines: [string, () => Engine, (blocks: number) => void][] = [
  ["null", () => nullEngine, () => {}],
  [
    "google (loopback)",
    () => google(),
    (blocks) => (speech.behaviour.scriptedFinals = [{ afterRequests: Math.floor(blocks / 2), text: "one" }]),
  ],
  ["whisper (worker)", () => whisper, () => {}],
  [
    "failover, Google failing half way",
    () => new FailoverEngine(google(), whisper, loadFailoverConfig({ OZEN_FAILOVER_NO_RESULT_MS: "0" })),
    (blocks) => {
      speech.behaviour.scriptedFinals = [{ afterRequests: Math.floor(blocks / 3), text: "one" }];
      speech.behaviour.failOnceAfterRequests = Math.floor(blocks / 2);
    },
  ],
  [
    "final pass over Google",
    () => new FinalPassEngine(google(), whisper, { timeoutMs: 5000, prefer: "primary", bufferMaxS: 60 }),
    (blocks) => (speech.behaviour.scriptedFinals = [{ afterRequests: Math.floor(blocks / 2), text: "one" }]),
  ],
];

describe.skipIf(skip !== undefined)("the engine contract", () => {
  beforeAll(async () => {
    speech = await startSpeechServer();
    ({ engine: whisper } = await WhisperEngine.start(testWhisperConfig()));
  });
  afterAll(async () => {
    for (const c of closers) await c();
    await whisper?.close();
    speech?.close();
  });

  it.each(engines)(
    "%s: finals in order within the fed audio, a commit point that only moves forward, silence after end",
    async (_name, make, script) => {
      const pcm = callOf(loadCallAudio("password"), 1200, loadCallAudio("directory"), 1200);
      const blocks = Math.ceil(pcm.length / 800);
      script(blocks);
      const engine = make();
      const finals: EngineFinal[] = [];
      const failures: string[] = [];
      let ended = false;
      let afterEnd = 0;
      const session = engine.open(callStart(`CAcontract${Math.round(Math.random() * 1e9)}`), {
        interim: () => void (ended && afterEnd++),
        final: (r) => {
          if (ended) afterEnd++;
          finals.push(r);
        },
        failed: (f) => failures.push(f.code),
        switched: () => void (ended && afterEnd++),
      });
      const commits: number[] = [];
      let fed = 0;
      await play(
        {
          feed: (p, s) => {
            session.feed(p, s);
            fed = s + p.length;
            if (session.committedSample !== undefined) commits.push(session.committedSample);
          },
          end: () => session.end(),
        },
        pcm,
        { speed: 3 },
      );
      await session.end();
      ended = true;
      if (session.committedSample !== undefined) commits.push(session.committedSample);
      await sleep(300);

      expect(failures).toEqual([]);
      expect(afterEnd).toBe(0);
      const fedMs = (fed * 1000) / 8000;
      let lastEnd = 0;
      for (const f of finals) {
        expect(f.audioStartMs).toBeGreaterThanOrEqual(lastEnd - 1);
        expect(f.audioEndMs).toBeGreaterThanOrEqual(f.audioStartMs);
        expect(f.audioEndMs).toBeLessThanOrEqual(fedMs + 1);
        lastEnd = f.audioEndMs;
      }
      for (let i = 1; i < commits.length; i++) expect(commits[i]).toBeGreaterThanOrEqual(commits[i - 1]!);
      for (const c of commits) expect(c).toBeLessThanOrEqual(fed);
      if (engine !== nullEngine) expect(finals.length).toBeGreaterThan(0);
    },
    120_000,
  );
});
