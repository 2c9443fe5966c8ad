/**
 * What the whisper tests share: where the worker's venv is (tests skip with the reason when it is
 * missing), the test speech (real Asterisk prompts from ../shared/data when it is there, else the
 * project's own espeak-ng recordings of the same prompts: tools/src/speech-data.ts), Twilio's mu-law
 * round trip, and a paced player that feeds a session 100 ms blocks the way the relay does.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { decodeMulaw } from "@ozen/shared";
import type { RelayStart, TranscriptEvent } from "@ozen/shared";
import { expect } from "vitest";
import { loadAudio8k } from "../../tools/src/audio.js";
import { testSpeech } from "../../tools/src/speech-data.js";
import type { TestUtterance } from "../../tools/src/speech-data.js";
import type { EngineSession } from "../src/engines/engine.js";
import { loadWhisperConfig } from "../src/engines/whisper/config.js";
import type { WhisperConfig } from "../src/engines/whisper/config.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, "../..");
const workerDir = path.join(repo, "stt-runner/whisper");
const python = path.join(workerDir, ".venv/bin/python");

/** Why the whisper tests cannot run here, or undefined when they can. */
export function whisperSkipReason(): string | undefined {
  if (!existsSync(python)) return `no worker venv at ${python} (run make install)`;
  if (!existsSync(path.join(workerDir, "ozen_whisper", "server.py"))) return "the worker has no serve command yet";
  return undefined;
}

/** The worker with tiny.en (English), as the tests run it. */
export function testWhisperConfig(env: Record<string, string> = {}): WhisperConfig {
  return loadWhisperConfig({
    WHISPER_PYTHON: python,
    WHISPER_WORKER_DIR: workerDir,
    WHISPER_MODEL: "tiny.en",
    WHISPER_LANGUAGE: "en",
    WHISPER_READY_TIMEOUT_MS: "120000",
    WHISPER_RESTART_BACKOFF_MS: "50",
    ...env,
  });
}

/**
 * One of the test prompts as the runner gets it from the edge: 8 kHz, through Twilio's mu-law and
 * back. `password`: "Please enter your password followed by the pound key."; `directory`: a
 * prompt with "if", "person", "looking", "press", "star" and "now"; `channel`: "Please enter the
 * channel number followed by the pound key."
 */
export function loadCallAudio(name: TestUtterance): Int16Array {
  return decodeMulaw(loadAudio8k(testSpeech(name).path).mulaw);
}

/** Call audio made of pieces: recordings and silences (ms). */
export function callOf(...parts: (Int16Array | number)[]): Int16Array {
  const arrays = parts.map((p) => (typeof p === "number" ? new Int16Array((p * 8000) / 1000) : p));
  const out = new Int16Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Feeds `pcm` in 100 ms blocks from call sample `fromSample`, `speed` times real time (Infinity:
 * all at once); `at(ms)` hooks run once the audio up to that call time has been fed.
 */
export async function play(
  session: EngineSession,
  pcm: Int16Array,
  o: { speed?: number; fromSample?: number; at?: Record<number, () => void | Promise<void>> } = {},
): Promise<void> {
  const speed = o.speed ?? 1;
  const hooks = Object.entries(o.at ?? {})
    .map(([ms, fn]) => [Number(ms), fn] as const)
    .sort((a, b) => a[0] - b[0]);
  const t0 = performance.now();
  for (let i = 0; i < pcm.length; i += 800) {
    const start = (o.fromSample ?? 0) + i;
    session.feed(pcm.subarray(i, Math.min(pcm.length, i + 800)), start);
    const fedMs = ((i + 800) * 1000) / 8000;
    while (hooks.length > 0 && hooks[0]![0] <= fedMs) await hooks.shift()![1]();
    if (Number.isFinite(speed)) {
      const due = t0 + fedMs / speed;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
  }
}

/** A relay start for a test call. */
export function callStart(callSid: string, customParameters: Record<string, string> = {}): RelayStart {
  return {
    v: 1,
    type: "start",
    callSid,
    streamSid: `MZ${callSid}`,
    accountSid: "ACtest",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: 100,
    tracks: ["inbound"],
    customParameters,
    resumeFromSeq: 0,
  };
}

/** Lowercase words without punctuation. */
export function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9' ]/g, " ")
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

/**
 * Checks the engine events of a call that Google transcribes first and whisper after a switch
 * (partials, meaningful and speech events left out): one Google final, the switch, one whisper
 * final or more (whisper ends an utterance at a pause), the end. Returns how many whisper finals.
 */
export function expectGoogleThenWhisper(events: readonly TranscriptEvent[]): number {
  const kinds = events
    .map((e) => (e.type === "final" ? `final:${e.engine}` : e.type))
    .filter((t) => t !== "partial" && t !== "meaningful" && !t.startsWith("speech."));
  const whisperFinals = kinds.length - 4;
  expect(whisperFinals).toBeGreaterThanOrEqual(1);
  expect(kinds).toEqual([
    "call.started",
    "final:google-v1",
    "engine.switched",
    ...Array<string>(Math.max(0, whisperFinals)).fill("final:whisper"),
    "call.ended",
  ]);
  return whisperFinals;
}
