/** A call's phrase hints as the engines take them: configured first, then the call's own, checked. */
import { describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import { callOwnPhrases } from "../src/call-phrases.js";
import { callPhrases, loadGoogleConfig } from "../src/engines/google/config.js";
import { callHints, loadWhisperConfig } from "../src/engines/whisper/config.js";
import { settingError } from "./setting-error.js";

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

describe("the configured phrases (GOOGLE_PHRASES, WHISPER_HINTS)", () => {
  const long = "x".repeat(101);

  it("are taken when every phrase follows a call's rules, however many (each engine caps a call's own)", () => {
    const most = "\u05d0".repeat(100);
    const many = Array.from({ length: 60 }, (_, i) => `phrase ${i}`);
    expect(loadGoogleConfig({ GOOGLE_PHRASES: `ozen,${most}` }).phrases).toEqual(["ozen", most]);
    expect(loadGoogleConfig({ GOOGLE_PHRASES: many.join(",") }).phrases).toEqual(many);
    expect(loadWhisperConfig({ WHISPER_HINTS: `Aoife|${most}` }).hints).toEqual(["Aoife", most]);
    expect(loadWhisperConfig({ GOOGLE_PHRASES: "Aoife" }).hints).toEqual(["Aoife"]);
  });

  it("refuse a phrase too long or with a control character at start, naming the setting and the phrase", () => {
    const google = settingError(() => loadGoogleConfig({ GOOGLE_PHRASES: `ozen,${long}` }));
    expect(google.setting).toBe("GOOGLE_PHRASES");
    expect(google.message).toBe(
      `GOOGLE_PHRASES is refused: GOOGLE_PHRASES[1] "${"x".repeat(24)}..." is 101 characters, at most 100, ` +
        "expected phrases of 1 to 100 characters with no control character",
    );
    const whisper = settingError(() => loadWhisperConfig({ WHISPER_HINTS: "Aoife,Eva\tNakagawa" }));
    expect(whisper.setting).toBe("WHISPER_HINTS");
    expect(whisper.message).toMatch(
      /^WHISPER_HINTS is refused: WHISPER_HINTS\[1\] "EvaU\+0009Nakagawa" holds a control character \(U\+0009\)/,
    );
    // whisper takes GOOGLE_PHRASES when WHISPER_HINTS is unset: checked there too, under its own name
    const fromGoogle = settingError(() => loadWhisperConfig({ GOOGLE_PHRASES: "Ao\u0085ife" }));
    expect(fromGoogle.setting).toBe("GOOGLE_PHRASES");
    expect(fromGoogle.message).toMatch(/holds a control character \(U\+0085\)/);
  });
});
