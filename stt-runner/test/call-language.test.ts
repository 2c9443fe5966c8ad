/** `call.started`'s language: the engine's, not a Hebrew default. */
import { describe, expect, it } from "vitest";
import { parseRunnerToEdge } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import { callOwnLanguage, googleLanguage, whisperLanguage } from "../src/call-language.js";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { loadWhisperConfig } from "../src/engines/whisper/config.js";
import { ArrivalClock, TranscriptForwarder } from "../src/transcripts.js";

const start = (customParameters: Record<string, string> = {}): RelayStart => ({
  v: 1,
  type: "start",
  callSid: "CAlang",
  streamSid: "MZ1",
  accountSid: "AC1",
  sampleRateHz: 8000,
  encoding: "pcm16le",
  blockMs: 100,
  tracks: ["inbound"],
  customParameters,
  resumeFromSeq: 0,
});

describe("the language of a call", () => {
  it("whisper: WHISPER_LANGUAGE, unless the call's ozen_language chose one", () => {
    const english = whisperLanguage(loadWhisperConfig({ WHISPER_LANGUAGE: "en" }));
    expect(english(start())).toBe("en");
    expect(english(start({ ozen_language: "he-IL" }))).toBe("he");
  });

  it("Google: GOOGLE_LANGUAGE (one language per runner)", () => {
    expect(googleLanguage(loadGoogleConfig({ GOOGLE_LANGUAGE: "en-US" }))(start())).toBe("en-US");
    expect(googleLanguage(loadGoogleConfig({}))(start({ ozen_language: "en-US" }))).toBe("he-IL");
  });

  it("an engine with no language: the call's, else undetermined", () => {
    expect(callOwnLanguage(start())).toBe("und");
    expect(callOwnLanguage(start({ ozen_language: "en-GB" }))).toBe("en-GB");
  });

  it("call.started says the language it is given", () => {
    const sent: string[] = [];
    const f = new TranscriptForwarder({
      start: start(),
      engine: "whisper",
      language: "en",
      send: (text) => sent.push(text),
      clock: new ArrivalClock(),
      now: () => 0,
    });
    f.close();
    const first = parseRunnerToEdge(sent[0]!);
    expect(first.ok && first.message.type === "event" && first.message.event).toMatchObject({
      type: "call.started",
      language: "en",
    });
  });
});
