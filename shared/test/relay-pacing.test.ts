/** The pacing rule of one call's audio at the runner, with plain values. */
import { describe, expect, it } from "vitest";
import { AudioPacer, paceAllowanceMs } from "../src/index.js";

describe("pacing", () => {
  it("allows the wall time since the start plus the slack", () => {
    expect(paceAllowanceMs(1000, 1000, 5000)).toBe(5000);
    expect(paceAllowanceMs(1000, 4000, 5000)).toBe(8000);
    expect(paceAllowanceMs(1000, 500, 5000)).toBe(5000); // a clock before the start counts as the start
  });

  it("a real-time call never runs out: 100 ms blocks every 100 ms for an hour", () => {
    const p = new AudioPacer(0, 2000);
    for (let i = 0; i < 36_000; i++) expect(p.admit(100, i * 100)).toBe(true);
    expect(p.audioFedMs).toBe(3_600_000);
  });

  it("a burst of audio already due (a replay of the buffer) passes at once, up to the slack", () => {
    const p = new AudioPacer(0, 120_000);
    let fed = 0;
    while (p.admit(100, 0)) fed++;
    expect(fed).toBe(1200);
  });

  it("a call fed at 5x real time is refused once it is a slack ahead, and fed again as time catches up", () => {
    const p = new AudioPacer(0, 1000);
    let refusedAtMs: number | undefined;
    for (let t = 0; t < 10_000 && refusedAtMs === undefined; t += 20) if (!p.admit(100, t)) refusedAtMs = t;
    // 100 ms every 20 ms (5x): the 13th block, at 240 ms, would put 1300 ms fed against 1240 allowed
    expect(refusedAtMs).toBe(240);
    expect(p.audioFedMs).toBe(1200);
    expect(p.admit(100, 299)).toBe(false);
    expect(p.dueMs(100)).toBe(300);
    expect(p.admit(100, 300)).toBe(true); // 1300 fed, 300 + 1000 allowed
    expect(p.audioFedMs).toBe(1300);
    expect(p.dueMs(100)).toBe(400);
  });
});
