import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TranscriptPolicy, decodeEvent, encodeEvent, joinStable, parseTranscriptEvent } from "../src/index.js";
import type {
  FinalInput,
  InterimInput,
  PartialEvent,
  PolicyOptions,
  TranscriptEvent,
  UtteranceEvent,
} from "../src/index.js";

const seg = (text: string, stability?: number) => (stability === undefined ? { text } : { text, stability });
/** An interim of one segment. */
const said = (text: string, audioEndMs = 0, more: Partial<InterimInput> = {}): InterimInput => ({
  segments: [seg(text)],
  audioEndMs,
  ...more,
});
const finalOf = (text: string, more: Partial<FinalInput> = {}): FinalInput => ({
  text,
  audioStartMs: 0,
  audioEndMs: 1000,
  engine: "google-v1",
  ...more,
});
const types = (events: readonly TranscriptEvent[]) => events.map((e) => e.type);
const partials = (events: readonly TranscriptEvent[]) => events.filter((e): e is PartialEvent => e.type === "partial");

describe("cadence", () => {
  it("sends the first partial of an utterance at once (leading edge)", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim(said("שלום", 300), 1000)).toMatchObject([
      { type: "partial", text: "שלום", seq: 0, wallMs: 1000 },
    ]);
  });

  it("holds a change inside the cadence and sends the newest text at exactly last partial + cadence", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 1000);
    expect(p.onInterim(said("שלום אני"), 1040)).toEqual([]);
    expect(p.onInterim(said("שלום אני רוצה"), 1120)).toEqual([]);
    expect(p.nextDueMs()).toBe(1180);
    expect(p.tick(1179)).toEqual([]);
    expect(partials(p.tick(1180))).toMatchObject([{ text: "שלום אני רוצה", seq: 1, wallMs: 1180 }]);
  });

  it("has nothing due when nothing waits", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.nextDueMs()).toBeUndefined();
    p.onInterim(said("שלום"), 0);
    expect(p.nextDueMs()).toBeUndefined();
    p.onInterim(said("שלום לך"), 50);
    p.tick(180);
    expect(p.nextDueMs()).toBeUndefined();
    expect(p.tick(10_000)).toEqual([]);
  });

  it("sends a change at once when the cadence has already elapsed", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    expect(partials(p.onInterim(said("שלום לך"), 180))).toMatchObject([{ text: "שלום לך", wallMs: 180 }]);
  });

  it("follows a configured cadence", () => {
    const p = new TranscriptPolicy("CA1", { cadenceMs: 250 });
    p.onInterim(said("שלום"), 0);
    expect(p.onInterim(said("שלום לך"), 200)).toEqual([]);
    expect(p.nextDueMs()).toBe(250);
  });

  it("sends an overdue text when the next interim comes before the late tick", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום לך"), 50);
    expect(partials(p.onInterim(said("שלום לך חבר"), 400))).toMatchObject([{ text: "שלום לך חבר", wallMs: 400 }]);
  });
});

describe("unchanged text", () => {
  it("is not sent again", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("hello there"), 0);
    expect(p.onInterim(said("hello there"), 1000)).toEqual([]);
  });

  it("is the same text whatever its spacing or segmentation", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("hello there"), 0);
    expect(p.onInterim({ segments: [seg(" hello "), seg("  there")], audioEndMs: 0 }, 1000)).toEqual([]);
  });

  it("cancels a waiting text when the engine comes back to what was sent", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("hello there"), 0);
    p.onInterim(said("hello there friend"), 50);
    expect(p.onInterim(said("hello there"), 100)).toEqual([]);
    expect(p.nextDueMs()).toBeUndefined();
    expect(p.tick(500)).toEqual([]);
  });
});

describe("short fragments", () => {
  it("holds a one-character addition for a whole cadence even when the cadence has elapsed", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    expect(p.onInterim(said("שלום ל"), 500)).toEqual([]);
    expect(p.nextDueMs()).toBe(680);
    expect(partials(p.tick(680))).toMatchObject([{ text: "שלום ל", wallMs: 680 }]);
  });

  it("holds a one-character removal the same way", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום ל"), 0);
    expect(p.onInterim(said("שלום"), 500)).toEqual([]);
    expect(p.nextDueMs()).toBe(680);
  });

  it("sends a two-character change at once (the fragment is not shorter than minDeltaChars)", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    expect(partials(p.onInterim(said("שלום לך"), 500))).toMatchObject([{ text: "שלום לך" }]);
  });

  it("sends a held fragment at once when it grows into a larger change", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום ל"), 500);
    expect(partials(p.onInterim(said("שלום לכם"), 550))).toMatchObject([{ text: "שלום לכם", wallMs: 550 }]);
  });

  it("keeps the first hold time while the fragment stays short (no starving)", () => {
    const p = new TranscriptPolicy("CA1", { minDeltaChars: 3 });
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום ל"), 500);
    p.onInterim(said("שלום לכ"), 600);
    expect(p.nextDueMs()).toBe(680);
  });

  it("sends a short change inside the cadence at the next cadence, like any other", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום ל"), 100);
    expect(p.nextDueMs()).toBe(180);
  });

  it("does not count a changed last letter as a short fragment", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("hello wa"), 0);
    expect(partials(p.onInterim(said("hello wo"), 500))).toMatchObject([{ text: "hello wo" }]);
  });

  it("never holds the first partial of an utterance", () => {
    const p = new TranscriptPolicy("CA1");
    expect(partials(p.onInterim(said("ו"), 0))).toMatchObject([{ text: "ו" }]);
  });

  it("holds nothing when minDeltaChars is 0", () => {
    const p = new TranscriptPolicy("CA1", { minDeltaChars: 0 });
    p.onInterim(said("שלום"), 0);
    expect(partials(p.onInterim(said("שלום ל"), 500))).toHaveLength(1);
  });
});

describe("segments and the stable prefix", () => {
  it("merges an interim's segments into one text with normalised spaces", () => {
    const p = new TranscriptPolicy("CA1");
    const [e] = p.onInterim({ segments: [seg("אני  רוצה "), seg(" לקבוע"), seg("תור")], audioEndMs: 0 }, 0);
    expect(e).toMatchObject({ text: "אני רוצה לקבוע תור" });
  });

  it("counts the whole words two consecutive interims agree on as stable", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("אני רוצה לקבוע"), 0);
    expect(p.onInterim(said("אני רוצה לקבוע תור"), 300)[0]).toMatchObject({
      stable: "אני רוצה לקבוע",
      volatile: "תור",
    });
  });

  it("does not count the last word as stable even when both interims have it (it may still grow)", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("to be or"), 0);
    expect(p.onInterim(said("to be"), 200)[0]).toMatchObject({ stable: "to", volatile: "be" });
  });

  it("counts a word agreed by an interim that was never sent", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("to"), 0);
    p.onInterim(said("to be"), 50); // waits
    expect(p.onInterim(said("to be or"), 180)[0]).toMatchObject({ stable: "to be", volatile: "or" });
  });

  it("trusts leading segments at or above stability 0.8", () => {
    const p = new TranscriptPolicy("CA1");
    const [e] = p.onInterim({ segments: [seg("to be", 0.8), seg(" or not", 0.3)], audioEndMs: 0 }, 0);
    expect(e).toMatchObject({ stable: "to be", volatile: "or not" });
  });

  it("stops trusting segments at the first unstable one", () => {
    const p = new TranscriptPolicy("CA1");
    const [e] = p.onInterim({ segments: [seg("to", 0.9), seg("be", 0.1), seg("or", 0.9)], audioEndMs: 0 }, 0);
    expect(e).toMatchObject({ stable: "to", volatile: "be or" });
  });

  it("follows a configured stability threshold", () => {
    const p = new TranscriptPolicy("CA1", { stableStability: 0.95 });
    const [e] = p.onInterim({ segments: [seg("to be", 0.9), seg(" or not", 0.3)], audioEndMs: 0 }, 0);
    expect(e).toMatchObject({ stable: "", volatile: "to be or not" });
  });

  it("keeps the stable prefix of the last partial while the text still starts with it", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("one two three"), 0);
    const second = p.onInterim(said("one two three four"), 200)[0];
    expect(second).toMatchObject({ stable: "one two three", revised: false });
    p.onInterim(said("one two"), 300); // the engine wobbles; this waits (and agreement now covers "one" only)
    const third = p.onInterim(said("one two three four five six"), 400)[0];
    expect(third).toMatchObject({ stable: "one two three", volatile: "four five six", revised: false });
  });

  it("marks and counts a partial whose stable words the engine revised, and starts the prefix over", () => {
    const p = new TranscriptPolicy("CA1", { language: "en-US" });
    p.onInterim(said("recognize speech"), 0);
    expect(p.onInterim(said("recognize speech now"), 200)[0]).toMatchObject({ stable: "recognize speech" });
    const [e] = p.onInterim(said("wreck a nice beach"), 400);
    expect(e).toMatchObject({ stable: "", volatile: "wreck a nice beach", revised: true });
    expect(p.stats.stableRevisions).toBe(1);
    expect(p.onInterim(said("wreck a nice beach now"), 600)[0]).toMatchObject({
      stable: "wreck a nice beach",
      revised: false,
    });
  });
});

describe("Google's 'to be' example", () => {
  // Google's documented interim sequence for "to be or not to be", 200 ms apart, then the final
  const steps = (p: TranscriptPolicy) => [
    p.onInterim({ segments: [seg("tube", 0.01)], audioEndMs: 400, receivedAtMs: 950 }, 1000),
    p.onInterim({ segments: [seg("to be a", 0.01)], audioEndMs: 600, receivedAtMs: 1150 }, 1200),
    p.onInterim(
      { segments: [seg("to be", 0.9), seg(" or not to be", 0.01)], audioEndMs: 900, receivedAtMs: 1350 },
      1400,
    ),
    p.onFinal(
      {
        text: "to be or not to be",
        confidence: 0.92,
        audioStartMs: 0,
        audioEndMs: 1100,
        receivedAtMs: 1550,
        engine: "google-v1",
      },
      1600,
    ),
  ];

  it("sends each hypothesis with a stable prefix that grows only once the engine agrees", () => {
    const [a, b, c] = steps(new TranscriptPolicy("CA1", { language: "en-US" }));
    expect(partials(a!)).toMatchObject([{ seq: 0, text: "tube", stable: "", volatile: "tube", revised: false }]);
    expect(partials(b!)).toMatchObject([{ seq: 1, text: "to be a", stable: "", volatile: "to be a", revised: false }]);
    expect(partials(c!)).toMatchObject([
      { seq: 2, text: "to be or not to be", stable: "to be", volatile: "or not to be", revised: false },
    ]);
  });

  it("says meaningful once, at the third word", () => {
    const [a, b, c] = steps(new TranscriptPolicy("CA1", { language: "en-US" }));
    expect([types(a!), types(b!), types(c!)]).toEqual([["partial"], ["partial", "meaningful"], ["partial"]]);
    expect(b![1]).toMatchObject({ type: "meaningful", text: "to be a", seq: 1 });
  });

  it("ends with the polished final", () => {
    const d = steps(new TranscriptPolicy("CA1", { language: "en-US" }))[3];
    expect(d).toEqual([
      {
        v: 1,
        type: "final",
        callSid: "CA1",
        utteranceId: "CA1:u1",
        wallMs: 1600,
        latencyMs: 50,
        text: "To be or not to be.",
        rawText: "to be or not to be",
        confidence: 0.92,
        stable: true,
        engine: "google-v1",
        audioStartMs: 0,
        audioEndMs: 1100,
      },
    ]);
  });
});

describe("meaningful", () => {
  it("fires in Hebrew at 10 letters, spaces not counted, in two words", () => {
    const p = new TranscriptPolicy("CA1");
    expect(types(p.onInterim(said("שלום משפחה"), 0))).toEqual(["partial"]); // 9 letters
    expect(types(p.onInterim(said("שלום למשפחה"), 200))).toEqual(["partial", "meaningful"]); // 10
  });

  it("fires in Hebrew at the third word, however short", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("כן"), 0);
    p.onInterim(said("כן אני"), 200);
    const e = p.onInterim(said("כן אני פה"), 400);
    expect(e).toMatchObject([{ type: "partial" }, { type: "meaningful", text: "כן אני פה", wallMs: 400 }]);
  });

  it("fires once per utterance and again in the next one", () => {
    const p = new TranscriptPolicy("CA1", { language: "en-US" });
    const all = [
      ...p.onInterim(said("I want to"), 0),
      ...p.onInterim(said("I want to book"), 200),
      ...p.onFinal(finalOf("I want to book"), 300),
      ...p.onInterim(said("for tomorrow please"), 400),
    ];
    expect(all.filter((e) => e.type === "meaningful").map((e) => e.utteranceId)).toEqual(["CA1:u1", "CA1:u2"]);
  });

  it("fires with the partial the cadence released", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("כן"), 0);
    p.onInterim(said("כן אני פה"), 100);
    expect(types(p.tick(180))).toEqual(["partial", "meaningful"]);
  });

  it("does not fire for an utterance that ends before reaching the threshold", () => {
    const p = new TranscriptPolicy("CA1");
    expect(types([...p.onInterim(said("כן"), 0), ...p.onFinal(finalOf("כן"), 100)])).toEqual(["partial", "final"]);
  });

  it("follows configured thresholds", () => {
    const p = new TranscriptPolicy("CA1", { meaningfulChars: 4, meaningfulWords: 5 });
    expect(types(p.onInterim(said("לא"), 0))).toEqual(["partial"]);
    expect(types(p.onInterim(said("לא לא"), 200))).toEqual(["partial", "meaningful"]);
  });
});

describe("final", () => {
  it("drops a waiting partial, is sent at once, and nothing of its utterance follows", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום לך"), 50);
    expect(p.nextDueMs()).toBe(180);
    expect(types(p.onFinal(finalOf("שלום לך"), 100))).toEqual(["final"]);
    expect(p.nextDueMs()).toBeUndefined();
    expect(p.tick(1000)).toEqual([]);
  });

  it("carries other engines' texts for the same audio, polished like its own", () => {
    const p = new TranscriptPolicy("CA1", { language: "en" });
    const [e] = p.onFinal(finalOf("hello world", { alternatives: [{ engine: "whisper", text: " hello  world" }] }), 10);
    expect(e).toMatchObject({
      type: "final",
      text: "Hello world.",
      alternatives: [{ engine: "whisper", text: "Hello world." }],
    });
    expect(parseTranscriptEvent(e)).toEqual({ ok: true, event: e });
  });

  it("is never held by the cadence", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    expect(p.onFinal(finalOf("שלום"), 10)).toMatchObject([{ type: "final", wallMs: 10 }]);
  });

  it("advances the utterance id and restarts seq", () => {
    const p = new TranscriptPolicy("CA7");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [partial] = p.onInterim(said("שלום"), i * 1000);
      expect(partial).toMatchObject({ seq: 0 });
      ids.push(partial!.utteranceId, p.onFinal(finalOf("שלום"), i * 1000 + 500)[0]!.utteranceId);
    }
    expect(ids).toEqual(["CA7:u1", "CA7:u1", "CA7:u2", "CA7:u2", "CA7:u3", "CA7:u3"]);
  });

  it("sends the first partial of the next utterance at once", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onFinal(finalOf("שלום"), 50);
    expect(p.onInterim(said("מה"), 60)).toMatchObject([{ type: "partial", utteranceId: "CA1:u2", wallMs: 60 }]);
  });

  it("carries polished and raw text, confidence, engine and the audio span", () => {
    const p = new TranscriptPolicy("CA1");
    const [f] = p.onFinal(
      finalOf("מה  השעה", { confidence: 0.8, audioStartMs: 1200, audioEndMs: 2400, engine: "whisper" }),
      3000,
    );
    expect(f).toMatchObject({
      text: "מה השעה?",
      rawText: "מה  השעה",
      confidence: 0.8,
      stable: true,
      engine: "whisper",
      audioStartMs: 1200,
      audioEndMs: 2400,
    });
  });

  it("leaves out a confidence outside 0..1", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onFinal(finalOf("שלום", { confidence: -1 }), 0)[0]).not.toHaveProperty("confidence");
  });

  it("emits nothing when empty but still closes the utterance", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("אממ"), 0);
    expect(p.onFinal(finalOf("  "), 100)).toEqual([]);
    expect(p.onFinal(finalOf("\u200f.", {}), 200)).toEqual([]);
    expect(p.utteranceId).toBe("CA1:u3");
    expect(p.stats).toMatchObject({ finals: 0, emptyFinals: 2 });
  });
});

describe("latency", () => {
  it("is emission time minus the arrival of the audio that produced the text", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim(said("שלום", 400, { receivedAtMs: 930 }), 1000)[0]!.latencyMs).toBe(70);
  });

  it("includes the time a partial waited for the cadence", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום", 400, { receivedAtMs: 990 }), 1000);
    p.onInterim(said("שלום לך", 500, { receivedAtMs: 1040 }), 1050);
    expect(p.tick(1180)[0]!.latencyMs).toBe(140);
  });

  it("is the final's own for a final", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onFinal(finalOf("שלום", { receivedAtMs: 1200 }), 2100)[0]!.latencyMs).toBe(900);
  });

  it("is left out when the arrival is unknown or later than now", () => {
    const p = new TranscriptPolicy("CA1");
    expect(p.onInterim(said("שלום"), 1000)[0]).not.toHaveProperty("latencyMs");
    expect(p.onFinal(finalOf("שלום", { receivedAtMs: 1500 }), 1100)[0]).not.toHaveProperty("latencyMs");
  });
});

describe("call events", () => {
  it("starts the call once, with its engine and language", () => {
    const p = new TranscriptPolicy("CA1", { language: "he-IL" });
    expect(p.start("google-v1", 5)).toEqual([
      { v: 1, type: "call.started", callSid: "CA1", wallMs: 5, engine: "google-v1", language: "he-IL" },
    ]);
    expect(p.start("google-v1", 6)).toEqual([]);
  });

  it("says the engine's profile at the start when it is given", () => {
    const p = new TranscriptPolicy("CA1", { language: "he-IL" });
    expect(p.start("google-v1", 5, { name: "fast", punctuation: false })[0]).toMatchObject({
      profile: { name: "fast", punctuation: false },
    });
  });

  it("ends the call once with its reason, dropping a waiting partial", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום לך"), 50);
    expect(p.end("caller_hung_up", 100)).toEqual([
      { v: 1, type: "call.ended", callSid: "CA1", wallMs: 100, reason: "caller_hung_up" },
    ]);
    expect(p.nextDueMs()).toBeUndefined();
    expect(p.end("again", 200)).toEqual([]);
  });

  it("ignores results after the call ended", () => {
    const p = new TranscriptPolicy("CA1");
    p.end("caller_hung_up", 0);
    expect([
      ...p.onInterim(said("שלום"), 10),
      ...p.onFinal(finalOf("שלום"), 20),
      ...p.tick(1000),
      ...p.engineSwitched("a", "b", "late", 30),
    ]).toEqual([]);
  });

  it("reports an engine switch and keeps the utterance open for the new engine's final", () => {
    const p = new TranscriptPolicy("CA1");
    p.onInterim(said("שלום"), 0);
    p.onInterim(said("שלום לך"), 50);
    expect(p.engineSwitched("google-v1", "whisper", "google unavailable", 60, 0)).toEqual([
      {
        v: 1,
        type: "engine.switched",
        callSid: "CA1",
        wallMs: 60,
        from: "google-v1",
        to: "whisper",
        reason: "google unavailable",
        resumeFromMs: 0,
      },
    ]);
    expect(p.nextDueMs()).toBeUndefined(); // the old engine's waiting text is gone
    expect(p.onFinal(finalOf("שלום לכם", { engine: "whisper" }), 900)[0]).toMatchObject({
      utteranceId: "CA1:u1",
      engine: "whisper",
    });
  });
});

describe("options", () => {
  it.each([
    [{ cadenceMs: 149 }, /^cadenceMs is 149, expected 150\.\.250/],
    [{ cadenceMs: 251 }, /^cadenceMs is 251/],
    [{ cadenceMs: Number.NaN }, /^cadenceMs is NaN/],
    [{ minDeltaChars: -1 }, /^minDeltaChars is -1, expected an integer >= 0/],
    [{ minDeltaChars: 1.5 }, /^minDeltaChars is 1.5/],
    [{ meaningfulChars: 0 }, /^meaningfulChars is 0, expected an integer >= 1/],
    [{ meaningfulWords: 0 }, /^meaningfulWords is 0, expected an integer >= 1/],
    [{ stableStability: 1.2 }, /^stableStability is 1.2, expected 0..1/],
    [{ language: "" }, /^language is ""/],
  ] as [PolicyOptions, RegExp][])("refuses %j with a RangeError naming the option", (options, error) => {
    expect(() => new TranscriptPolicy("CA1", options)).toThrow(RangeError);
    expect(() => new TranscriptPolicy("CA1", options)).toThrow(error);
  });

  it("accepts a cadence at either end of 150..250 ms", () => {
    expect(() => new TranscriptPolicy("CA1", { cadenceMs: 150 })).not.toThrow();
    expect(() => new TranscriptPolicy("CA1", { cadenceMs: 250 })).not.toThrow();
  });

  it("refuses an empty callSid", () => {
    expect(() => new TranscriptPolicy("")).toThrow(/callSid is empty/);
  });
});

describe("stats", () => {
  it("counts interims against the partials that went out", () => {
    const p = new TranscriptPolicy("CA1");
    for (let t = 0; t < 1000; t += 50) p.onInterim(said(`מילה ${t}`), t); // no ticks
    expect(p.stats).toMatchObject({ interims: 20, partials: 5 }); // at 0, 200, 400, 600, 800
  });
});

// ---- properties: a caller with a perfect timer drives the policy through random engine output ----

type Step =
  | { kind: "interim"; dtMs: number; words: string[]; cuts: number[]; stabilities: number[] }
  | { kind: "final"; dtMs: number; words: string[] }
  | { kind: "switch"; dtMs: number };

const word = fc.constantFrom("ש", "שלו", "שלום", "אני", "רוצה", "לקבוע", "תור", "to", "be", "or", "not", "tube", "a");
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("interim" as const),
      dtMs: fc.nat(400),
      words: fc.array(word, { maxLength: 7 }),
      cuts: fc.array(fc.nat(7), { maxLength: 2 }),
      stabilities: fc.array(fc.constantFrom(0.01, 0.5, 0.8, 0.9), { minLength: 3, maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("final" as const), dtMs: fc.nat(400), words: fc.array(word) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("switch" as const), dtMs: fc.nat(400) }) },
);

interface Run {
  events: TranscriptEvent[];
  lastInterimText: string | undefined;
  cadenceMs: number;
}

/** Feeds the steps, ticking exactly at every nextDueMs that falls before the next step, then drains. */
function drive(steps: readonly Step[], options: PolicyOptions): Run {
  const p = new TranscriptPolicy("CA1", options);
  const events: TranscriptEvent[] = [...p.start("google-v1", 0)];
  let now = 0;
  let audioMs = 0;
  let lastInterimText: string | undefined;
  const tickUntil = (t: number) => {
    for (let due = p.nextDueMs(); due !== undefined && due <= t; due = p.nextDueMs()) events.push(...p.tick(due));
  };
  for (const s of steps) {
    tickUntil(now + s.dtMs);
    now += s.dtMs;
    audioMs += 100;
    if (s.kind === "interim") {
      const bounds = [0, ...[...s.cuts].sort((a, b) => a - b).map((c) => Math.min(c, s.words.length)), s.words.length];
      const segments = bounds.slice(1).map((end, i) => ({
        text: (i > 0 ? " " : "") + s.words.slice(bounds[i], end).join(" "),
        stability: s.stabilities[i] ?? 0.01,
      }));
      events.push(...p.onInterim({ segments, audioEndMs: audioMs, receivedAtMs: now - 20 }, now));
      if (s.words.length) lastInterimText = s.words.join(" ");
    } else if (s.kind === "final") {
      events.push(...p.onFinal(finalOf(s.words.join(" "), { audioEndMs: audioMs, receivedAtMs: now }), now));
      lastInterimText = undefined;
    } else {
      events.push(...p.engineSwitched("google-v1", "whisper", "test", now));
      lastInterimText = undefined;
    }
  }
  tickUntil(Infinity);
  events.push(...p.end("caller_hung_up", now + 1000));
  return { events, lastInterimText, cadenceMs: options.cadenceMs ?? 180 };
}

const runs = fc
  .tuple(fc.array(step, { maxLength: 40 }), fc.integer({ min: 150, max: 250 }), fc.nat(3))
  .map(([steps, cadenceMs, minDeltaChars]) => drive(steps, { cadenceMs, minDeltaChars, language: "he-IL" }));

function byUtterance(events: readonly TranscriptEvent[]): Map<string, UtteranceEvent[]> {
  const out = new Map<string, UtteranceEvent[]>();
  for (const e of events) {
    if (e.type !== "partial" && e.type !== "meaningful" && e.type !== "final") continue;
    out.set(e.utteranceId, [...(out.get(e.utteranceId) ?? []), e]);
  }
  return out;
}

describe("policy properties", () => {
  it("never sends a partial or meaningful of an utterance after its final", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const list of byUtterance(events).values()) {
          const f = list.findIndex((e) => e.type === "final");
          if (f >= 0) expect(list.slice(f + 1)).toEqual([]);
        }
      }),
    );
  });

  it("spaces the partials of an utterance at least a cadence apart", () => {
    fc.assert(
      fc.property(runs, ({ events, cadenceMs }) => {
        for (const list of byUtterance(events).values()) {
          const times = partials(list).map((e) => e.wallMs);
          for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(cadenceMs);
        }
      }),
    );
  });

  it("makes stable a whole-word prefix of text and volatile the rest", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const e of partials(events)) {
          expect(e.text.startsWith(e.stable)).toBe(true);
          expect(e.stable === "" || e.text === e.stable || e.text[e.stable.length] === " ").toBe(true);
          expect(joinStable(e.stable, e.volatile)).toBe(e.text);
        }
      }),
    );
  });

  it("never shrinks the stable prefix within an utterance unless the partial says revised", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const list of byUtterance(events).values()) {
          const ps = partials(list);
          for (let i = 1; i < ps.length; i++) {
            if (!ps[i]!.revised) expect(ps[i]!.stable.startsWith(ps[i - 1]!.stable)).toBe(true);
            else expect(ps[i]!.text.startsWith(`${ps[i - 1]!.stable} `)).toBe(false);
          }
        }
      }),
    );
  });

  it("sends a partial only when its text changed, with seq 0, 1, 2, ...", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const list of byUtterance(events).values()) {
          const ps = partials(list);
          ps.forEach((e, i) => expect(e.seq).toBe(i));
          for (let i = 1; i < ps.length; i++) expect(ps[i]!.text).not.toBe(ps[i - 1]!.text);
        }
      }),
    );
  });

  it("says meaningful at most once per utterance, right after the partial it belongs to", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const list of byUtterance(events).values()) {
          const at = list.flatMap((e, i) => (e.type === "meaningful" ? [i] : []));
          expect(at.length).toBeLessThanOrEqual(1);
          for (const i of at) {
            const before = list[i - 1]!;
            expect(before.type).toBe("partial");
            expect(list[i]).toMatchObject({
              seq: (before as PartialEvent).seq,
              text: before.text,
              wallMs: before.wallMs,
            });
          }
        }
      }),
    );
  });

  it("eventually sends the newest hypothesis of an utterance still open", () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 40 }).map((steps) => drive(steps, {})),
        ({ events, lastInterimText }) => {
          if (lastInterimText === undefined) return;
          const last = partials(events).at(-1);
          expect(last?.text).toBe(lastInterimText);
        },
      ),
    );
  });

  it("emits only events the parser accepts, unchanged through encode and decode", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        for (const e of events) {
          expect(parseTranscriptEvent(e)).toEqual({ ok: true, event: e });
          expect(decodeEvent(encodeEvent(e))).toEqual({ ok: true, event: e });
        }
      }),
    );
  });

  it("numbers utterances upwards and ends with call.ended", () => {
    fc.assert(
      fc.property(runs, ({ events }) => {
        const ns = events.flatMap((e) => ("utteranceId" in e ? [Number(e.utteranceId.split(":u")[1])] : []));
        for (let i = 1; i < ns.length; i++) expect(ns[i]!).toBeGreaterThanOrEqual(ns[i - 1]!);
        expect(events[0]!.type).toBe("call.started");
        expect(events.at(-1)!.type).toBe("call.ended");
      }),
    );
  });
});
