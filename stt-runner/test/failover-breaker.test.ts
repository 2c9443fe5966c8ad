/** The circuit breaker's states, with the time given (no clock, no timers). */
import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../src/engines/breaker.js";
import { blockDbfs, loadFailoverConfig } from "../src/engines/failover.js";
import { callLanguage, loadWhisperConfig } from "../src/engines/whisper/config.js";
import { loadFinalPassConfig } from "../src/engines/whisper/final-pass.js";

const opts = { failures: 3, windowMs: 10_000, cooldownMs: 5_000 };

describe("CircuitBreaker", () => {
  it("stays closed below the failure count, and forgets failures older than the window", () => {
    const b = new CircuitBreaker(opts);
    b.failure(0);
    b.failure(1000);
    b.failure(10_500); // the first one is out of the window
    expect(b.state(10_500)).toBe("closed");
    expect(b.admit(10_500)).toEqual({ to: "primary", probe: false });
  });

  it("opens at N failures in the window and diverts new calls to the fallback", () => {
    const b = new CircuitBreaker(opts);
    for (const t of [0, 100, 200]) b.failure(t);
    expect(b.state(200)).toBe("open");
    expect(b.admit(300)).toEqual({ to: "fallback" });
    expect(b.counters).toMatchObject({ opened: 1, callsDiverted: 1, failures: 3 });
  });

  it("lets one probe through after the cool-down; its result closes the breaker", () => {
    const b = new CircuitBreaker(opts);
    for (const t of [0, 100, 200]) b.failure(t);
    expect(b.state(5199)).toBe("open");
    expect(b.state(5200)).toBe("half-open");
    expect(b.admit(5200)).toEqual({ to: "primary", probe: true });
    expect(b.admit(5300)).toEqual({ to: "fallback" }); // one probe at a time
    b.success(6000, true);
    expect(b.state(6000)).toBe("closed");
    expect(b.admit(6000)).toEqual({ to: "primary", probe: false });
    expect(b.counters).toMatchObject({ opened: 1, closed: 1, probes: 1 });
  });

  it("opens again for a whole cool-down when the probe fails", () => {
    const b = new CircuitBreaker(opts);
    for (const t of [0, 100, 200]) b.failure(t);
    b.admit(6000);
    b.failure(7000, true);
    expect(b.state(11_999)).toBe("open");
    expect(b.state(12_000)).toBe("half-open");
    expect(b.counters.opened).toBe(2);
  });

  it("frees the probe slot when the probe call ends with no verdict", () => {
    const b = new CircuitBreaker(opts);
    for (const t of [0, 100, 200]) b.failure(t);
    expect(b.admit(6000)).toMatchObject({ probe: true });
    b.release(true);
    expect(b.admit(6100)).toMatchObject({ to: "primary", probe: true });
  });
});

describe("failover settings and the energy VAD", () => {
  it("reads defaults and refuses values out of range, naming the setting", () => {
    expect(loadFailoverConfig({})).toEqual({
      noResultMs: 5000,
      speechDbfs: -40,
      bufferMaxS: 120,
      breaker: { failures: 3, windowMs: 60_000, cooldownMs: 60_000 },
    });
    expect(() => loadFailoverConfig({ OZEN_BREAKER_FAILURES: "0" })).toThrow(
      'OZEN_BREAKER_FAILURES is "0", expected a number from 1 to 1000',
    );
    expect(() => loadFailoverConfig({ OZEN_FAILOVER_SPEECH_DBFS: "loud" })).toThrow(/OZEN_FAILOVER_SPEECH_DBFS/);
  });

  it("measures a block's level in dBFS", () => {
    expect(blockDbfs(new Int16Array(800))).toBe(-Infinity);
    expect(blockDbfs(new Int16Array(800).fill(32767))).toBeCloseTo(0, 3);
    expect(blockDbfs(new Int16Array(800).fill(328))).toBeCloseTo(-40, 0);
  });
});

describe("final pass and whisper settings", () => {
  it("final pass: Google's text by default, a bounded wait, and a clear refusal", () => {
    expect(loadFinalPassConfig({})).toEqual({ timeoutMs: 1000, prefer: "primary", bufferMaxS: 60 });
    expect(loadFinalPassConfig({ OZEN_FINAL_PASS_PREFER: "whisper" }).prefer).toBe("whisper");
    expect(() => loadFinalPassConfig({ OZEN_FINAL_PASS_PREFER: "both" })).toThrow(
      'OZEN_FINAL_PASS_PREFER is "both", expected one of google, whisper',
    );
    expect(() => loadFinalPassConfig({ OZEN_FINAL_PASS_TIMEOUT_MS: "60000" })).toThrow(
      'OZEN_FINAL_PASS_TIMEOUT_MS is "60000", expected a number from 50 to 30000',
    );
  });

  it("whisper: Hebrew and a multilingual model by default; a call's language wins", () => {
    const c = loadWhisperConfig({ WHISPER_PYTHON: "/usr/bin/python3" });
    expect(c).toMatchObject({ model: "base", language: "he", watchdogMs: 30_000, replayMaxS: 120 });
    expect(callLanguage(c, { ozen_language: "en-US" })).toBe("en");
    expect(callLanguage(c, { ozen_language: "iw-IL" })).toBe("he");
    expect(callLanguage(c, {})).toBe("he");
    expect(() => loadWhisperConfig({ WHISPER_LANGUAGE: "Hebrew" })).toThrow(
      'WHISPER_LANGUAGE is "Hebrew", expected a code like he or en',
    );
  });
});
