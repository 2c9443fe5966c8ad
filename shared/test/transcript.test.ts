import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TranscriptPolicy, polishFinal } from "../src/index.js";
import type { UtteranceEvent } from "../src/index.js";

const seg = (text: string, stability?: number) => (stability === undefined ? { text } : { text, stability });

describe("TranscriptPolicy cadence", () => {
  it("sends the first partial of an utterance at once", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim({ segments: [seg("שלום")], audioEndMs: 400 }, 1000)).toMatchObject([
      { type: "partial", text: "שלום", seq: 0 },
    ]);
  });

  it("holds later partials until the cadence elapses and then sends only the newest", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim({ segments: [seg("שלום")], audioEndMs: 400 }, 1000);
    expect(p.onInterim({ segments: [seg("שלום אני")], audioEndMs: 500 }, 1050)).toEqual([]);
    expect(p.onInterim({ segments: [seg("שלום אני רוצה")], audioEndMs: 600 }, 1100)).toEqual([]);
    expect(p.nextDueMs()).toBe(1180);
    expect(p.tick(1179)).toEqual([]);
    const out = p.tick(1180);
    expect(out[0]).toMatchObject({ type: "partial", text: "שלום אני רוצה", seq: 1, audioEndMs: 600 });
    expect(out.map((e) => e.type)).toEqual(["partial", "meaningful"]); // the third word
    expect(p.nextDueMs()).toBeUndefined();
  });

  it("does not repeat a partial whose text did not change", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim({ segments: [seg("hello")], audioEndMs: 400 }, 0);
    expect(p.onInterim({ segments: [seg(" hello ")], audioEndMs: 500 }, 1000)).toEqual([]);
  });

  it("refuses a cadence outside 150-250 ms", () => {
    expect(() => new TranscriptPolicy("CA1", { cadenceMs: 100 })).toThrow(/150..250/);
  });

  it("spaces partials at least a cadence apart, whatever the engine does (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(400), fc.string({ minLength: 1, maxLength: 12 })), { maxLength: 40 }),
        (steps) => {
          const p = new TranscriptPolicy("CA1");
          let now = 0;
          const out: UtteranceEvent[] = [];
          for (const [dt, text] of steps) {
            now += dt;
            out.push(...p.tick(now), ...p.onInterim({ segments: [seg(text)], audioEndMs: now }, now));
          }
          const times = out.filter((e) => e.type === "partial").map((e) => e.wallMs);
          for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(180);
        },
      ),
    );
  });
});

describe("TranscriptPolicy content", () => {
  it("follows Google's to-be example: merged segments, stable prefix, volatile tail, then the final", () => {
    const p = new TranscriptPolicy("CA1", { language: "en" });
    const a = p.onInterim({ segments: [seg("tube", 0.01)], audioEndMs: 300 }, 0);
    const b = p.onInterim({ segments: [seg("to be a", 0.01)], audioEndMs: 600 }, 200);
    const c = p.onInterim({ segments: [seg("to be", 0.9), seg(" or not to be", 0.01)], audioEndMs: 900 }, 400);
    const d = p.onFinal(
      { text: "to be or not to be", confidence: 0.92, audioStartMs: 0, audioEndMs: 1000, engine: "google-v1" },
      450,
    );
    expect(a[0]).toMatchObject({ text: "tube", stable: "", volatile: "tube" });
    expect(b[0]).toMatchObject({ text: "to be a", stable: "", volatile: "to be a" });
    expect(c[0]).toMatchObject({ text: "to be or not to be", stable: "to be", volatile: "or not to be" });
    expect(d).toEqual([
      {
        v: 1,
        type: "final",
        callSid: "CA1",
        utteranceId: "CA1:u1",
        wallMs: 450,
        text: "To be or not to be.",
        rawText: "to be or not to be",
        stable: true,
        confidence: 0.92,
        audioStartMs: 0,
        audioEndMs: 1000,
        engine: "google-v1",
      },
    ]);
  });

  it("counts words two hypotheses agree on as stable", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim({ segments: [seg("אני רוצה לקבוע")], audioEndMs: 300 }, 0);
    expect(p.onInterim({ segments: [seg("אני רוצה לקבוע תור")], audioEndMs: 600 }, 300)[0]).toMatchObject({
      stable: "אני רוצה לקבוע",
      volatile: "תור",
    });
  });

  it("says meaningful once per utterance, at the third word", () => {
    const p = new TranscriptPolicy("CA1");
    const types = (e: UtteranceEvent[]) => e.map((x) => x.type);
    expect(types(p.onInterim({ segments: [seg("כן")], audioEndMs: 100 }, 0))).toEqual(["partial"]);
    expect(types(p.onInterim({ segments: [seg("כן אני")], audioEndMs: 200 }, 200))).toEqual(["partial"]);
    expect(types(p.onInterim({ segments: [seg("כן אני פה")], audioEndMs: 300 }, 400))).toEqual([
      "partial",
      "meaningful",
    ]);
    expect(types(p.onInterim({ segments: [seg("כן אני פה עכשיו")], audioEndMs: 400 }, 600))).toEqual(["partial"]);
    p.onFinal({ text: "כן אני פה עכשיו", audioStartMs: 0, audioEndMs: 500, engine: "g" }, 700);
    expect(types(p.onInterim({ segments: [seg("תודה רבה לכם")], audioEndMs: 900 }, 800))).toEqual([
      "partial",
      "meaningful",
    ]);
  });

  it("says meaningful at 10 letters even in fewer words", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim({ segments: [seg("התקשרתיאליכם")], audioEndMs: 100 }, 0).map((e) => e.type)).toEqual([
      "partial",
      "meaningful",
    ]);
  });

  it("drops a pending partial when the final comes and starts a new utterance", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim({ segments: [seg("שלום")], audioEndMs: 100 }, 0);
    p.onInterim({ segments: [seg("שלום לך")], audioEndMs: 200 }, 50);
    const f = p.onFinal({ text: "שלום לך", audioStartMs: 0, audioEndMs: 300, engine: "g" }, 100);
    expect(f.map((e) => e.type)).toEqual(["final"]);
    expect(p.tick(1000)).toEqual([]);
    expect(p.onInterim({ segments: [seg("מה")], audioEndMs: 500 }, 1100)[0]).toMatchObject({
      utteranceId: "CA1:u2",
      seq: 0,
    });
  });

  it("takes latency from when the audio arrived", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim({ segments: [seg("שלום")], audioEndMs: 400, receivedAtMs: 930 }, 1000)[0]!.latencyMs).toBe(70);
  });

  it("emits nothing for an empty final but still ends the utterance", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onFinal({ text: "  ", audioStartMs: 0, audioEndMs: 10, engine: "g" }, 0)).toEqual([]);
    expect(p.utteranceId).toBe("CA1:u2");
  });
});

describe("polishFinal", () => {
  it.each([
    ["שלום  מה שלומך", "שלום, מה שלומך?"],
    ["מה השעה", "מה השעה?"],
    ["ומתי אתם פתוחים", "ומתי אתם פתוחים?"],
    ["אני רוצה לקבוע תור ,בבקשה", "אני רוצה לקבוע תור, בבקשה."],
    ["זה עולה 3.5 שקלים", "זה עולה 3.5 שקלים."],
    ["אכלתי צ'יפס בצה\"ל", "אכלתי צ'יפס בצה\"ל."],
    ["\u200fשלום\u200f", "שלום."],
    ["כבר יש נקודה.", "כבר יש נקודה."],
  ])("polishes Hebrew %j", (raw, out) => {
    expect(polishFinal(raw, "he-IL")).toBe(out);
  });

  it("capitalises and punctuates English", () => {
    expect(polishFinal("what time is it", "en-US")).toBe("What time is it?");
    expect(polishFinal("thanks for calling", "en")).toBe("Thanks for calling.");
  });
});
