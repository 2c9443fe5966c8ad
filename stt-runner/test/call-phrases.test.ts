/** A call's phrase hints as the engines take them: configured first, then the call's own, checked. */
import { describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import { callOwnPhrases } from "../src/call-phrases.js";
import { callPhrases, loadGoogleConfig } from "../src/engines/google/config.js";
import { callHints, loadWhisperConfig } from "../src/engines/whisper/config.js";

const start = (o: Partial<Pick<RelayStart, "phrases" | "customParameters">>) => ({ customParameters: {}, ...o });

describe("a call's phrase hints", () => {
  it("takes the relay start's phrases, and then ignores an ozen_phrases parameter", () => {
    expect(callOwnPhrases(start({ phrases: ["Aoife"], customParameters: { ozen_phrases: "Eva" } }))).toEqual({
      ok: true,
      phrases: ["Aoife"],
    });
  });

  it("reads ozen_phrases from a start without phrases, and refuses a bad one with the reason", () => {
    expect(callOwnPhrases(start({ customParameters: { ozen_phrases: "a|b" } }))).toEqual({
      ok: true,
      phrases: ["a", "b"],
    });
    expect(callOwnPhrases(start({ customParameters: { ozen_phrases: "a\tb" } }))).toEqual({
      ok: false,
      message: 'ozen_phrases[0] "aU+0009b" holds a control character (U+0009)',
    });
  });

  it("puts the configured ones first, each phrase once; a refused parameter adds nothing", () => {
    const google = loadGoogleConfig({ GOOGLE_PHRASES: "ozen,Twilio" });
    expect(callPhrases(google, start({ phrases: ["Twilio", "Aoife"] }))).toEqual(["ozen", "Twilio", "Aoife"]);
    expect(callPhrases(google, start({ customParameters: { ozen_phrases: "x".repeat(101) } }))).toEqual([
      "ozen",
      "Twilio",
    ]);
    const whisper = loadWhisperConfig({ WHISPER_HINTS: "ozen" });
    expect(callHints(whisper, start({ phrases: ["Aoife Nakagawa"] }))).toEqual(["ozen", "Aoife Nakagawa"]);
  });
});
