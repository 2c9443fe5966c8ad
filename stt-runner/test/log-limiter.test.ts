/** The runner's log limiter (first occurrence per call and kind, then counts), with plain values. */
import { describe, expect, it } from "vitest";
import { LogLimiter } from "../src/log-limiter.js";

describe("LogLimiter", () => {
  it("logs the first of each (call, kind) and counts the rest into one summary", () => {
    const l = new LogLimiter();
    let logged = 0;
    for (let i = 0; i < 10_000; i++) if (l.hit("CA1", "bad_audio")) logged++;
    expect(logged).toBe(1);
    expect(l.hit("CA1", "bad_message")).toBe(true);
    expect(l.hit("CA2", "bad_audio")).toBe(true);
    expect(l.flush()).toEqual([{ callSid: "CA1", kind: "bad_audio", suppressed: 9999 }]);
    // counted again from 0, still not logged one by one
    expect(l.hit("CA1", "bad_audio")).toBe(false);
    expect(l.flush({ callSid: "CA1", forget: true })).toEqual([{ callSid: "CA1", kind: "bad_audio", suppressed: 1 }]);
    expect(l.hit("CA1", "bad_audio")).toBe(true); // the call ended and was forgotten
  });

  it("is bounded: past maxKeys new calls share one key per kind", () => {
    const l = new LogLimiter(3);
    const logged = Array.from({ length: 100 }, (_, i) => l.hit(`CA${i}`, "gap")).filter(Boolean).length;
    expect(logged).toBe(4); // three calls, then the shared overflow key once
    expect(l.size).toBe(4);
    expect(l.flush()).toEqual([{ callSid: "(other calls)", kind: "gap", suppressed: 96 }]);
  });
});
