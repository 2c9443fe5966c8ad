import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  TRANSCRIPT_EVENT_TYPES,
  decodeEvent,
  encodeEvent,
  isUtteranceEvent,
  joinStable,
  parseTranscriptEvent,
  utteranceIdOf,
} from "../src/index.js";
import type { TranscriptEvent } from "../src/index.js";

const partial = {
  v: 1,
  type: "partial",
  callSid: "CA1",
  utteranceId: "CA1:u3",
  wallMs: 1000,
  latencyMs: 120,
  seq: 2,
  text: "אני רוצה לקבוע תור",
  stable: "אני רוצה",
  volatile: "לקבוע תור",
  revised: false,
  audioStartMs: 200,
  audioEndMs: 1800,
};

const final = {
  v: 1,
  type: "final",
  callSid: "CA1",
  utteranceId: "CA1:u3",
  wallMs: 1500,
  latencyMs: 900,
  text: "אני רוצה לקבוע תור.",
  rawText: "אני רוצה לקבוע תור",
  confidence: 0.92,
  stable: true,
  engine: "google-v1",
  audioStartMs: 200,
  audioEndMs: 2100,
};

const examples: Record<string, Record<string, unknown>> = {
  "call.started": { v: 1, type: "call.started", callSid: "CA1", wallMs: 0, engine: "google-v1", language: "he-IL" },
  partial,
  meaningful: {
    v: 1,
    type: "meaningful",
    callSid: "CA1",
    utteranceId: "CA1:u3",
    wallMs: 1000,
    seq: 2,
    text: "אני רוצה לקבוע תור",
    audioEndMs: 1800,
  },
  final,
  "call.ended": { v: 1, type: "call.ended", callSid: "CA1", wallMs: 9000, reason: "caller_hung_up" },
  "engine.switched": {
    v: 1,
    type: "engine.switched",
    callSid: "CA1",
    wallMs: 4000,
    from: "google-v1",
    to: "whisper",
    reason: "google unavailable",
    resumeFromMs: 3500,
  },
  "speech.started": { v: 1, type: "speech.started", callSid: "CA1", wallMs: 100, audioMs: 40 },
  "speech.ended": { v: 1, type: "speech.ended", callSid: "CA1", wallMs: 900, audioMs: 820, startAudioMs: 40 },
  dtmf: { v: 1, type: "dtmf", callSid: "CA1", wallMs: 50, digit: "#", audioMs: 1220 },
  "playback.started": {
    v: 1,
    type: "playback.started",
    callSid: "CA1",
    wallMs: 10,
    playId: "t1",
    audioMs: 0,
    queuedMs: 1,
  },
  "playback.finished": {
    v: 1,
    type: "playback.finished",
    callSid: "CA1",
    wallMs: 10,
    playId: "t1",
    audioMs: 3000,
    durationMs: 2980,
  },
  "playback.cleared": {
    v: 1,
    type: "playback.cleared",
    callSid: "CA1",
    wallMs: 10,
    playId: "t1",
    audioMs: 1500,
    heardMs: 640,
    reason: "barge_in",
  },
  "playback.mark": {
    v: 1,
    type: "playback.mark",
    callSid: "CA1",
    wallMs: 10,
    name: "m1",
    audioMs: 700,
    cleared: false,
  },
  barge_in: {
    v: 1,
    type: "barge_in",
    callSid: "CA1",
    wallMs: 10,
    policy: "speech",
    playId: "t1",
    speechAudioMs: 1200,
    audioMs: 1400,
    latencyMs: 210,
  },
};

function message(value: unknown): string {
  const r = parseTranscriptEvent(value);
  if (r.ok) throw new Error("expected the parser to refuse");
  return r.message;
}

describe("parseTranscriptEvent accepts", () => {
  it.each(TRANSCRIPT_EVENT_TYPES.map((t) => [t]))("a valid %s event as it is", (type) => {
    expect(parseTranscriptEvent(examples[type])).toEqual({ ok: true, event: examples[type] });
  });

  it("events without their optional fields", () => {
    const { latencyMs: _l, audioStartMs: _a, ...bare } = partial;
    expect(parseTranscriptEvent(bare)).toEqual({ ok: true, event: bare });
    const { confidence: _c, latencyMs: _fl, ...bareFinal } = final;
    expect(parseTranscriptEvent(bareFinal)).toEqual({ ok: true, event: bareFinal });
  });

  it("call.started with the engine's profile", () => {
    const started = { ...examples["call.started"], profile: { name: "fast", punctuation: false } };
    expect(parseTranscriptEvent(started)).toEqual({ ok: true, event: started });
  });

  it("a partial whose stable prefix is empty or the whole text", () => {
    expect(parseTranscriptEvent({ ...partial, stable: "", volatile: partial.text }).ok).toBe(true);
    expect(parseTranscriptEvent({ ...partial, stable: partial.text, volatile: "" }).ok).toBe(true);
  });

  it("an event with fields it does not know, dropping them", () => {
    const r = parseTranscriptEvent({ ...examples["call.ended"], future: "field" });
    expect(r).toEqual({ ok: true, event: examples["call.ended"] });
  });
});

describe("parseTranscriptEvent refuses, saying why", () => {
  it("a value that is not an object", () => {
    expect(message([1])).toBe("event is an array, expected an object");
    expect(message(null)).toBe("event is null, expected an object");
  });

  it("another schema version", () => {
    expect(message({ ...partial, v: 2 })).toBe("event version is 2, this parser reads version 1");
    expect(message({ ...partial, v: undefined })).toBe("event version is missing, this parser reads version 1");
  });

  it("an unknown type", () => {
    expect(message({ ...partial, type: "engine.failed" })).toBe(
      'event type "engine.failed" is not one of call.started, partial, meaningful, final, call.ended, engine.switched, ' +
        "speech.started, speech.ended, dtmf, playback.started, playback.finished, playback.cleared, playback.mark, barge_in",
    );
  });

  it("a voice event with a word outside its set, or a key that is not a key", () => {
    expect(message({ ...examples["playback.cleared"], reason: "bored" })).toBe(
      'playback.cleared.reason is "bored", expected one of clear, barge_in, call_ended',
    );
    expect(message({ ...examples["dtmf"], digit: "12" })).toBe("dtmf.digit is a string, expected one of 0-9 * # A-D");
    expect(message({ ...examples["speech.ended"], startAudioMs: 900 })).toBe(
      "speech.ended.audioMs (820) is before startAudioMs (900)",
    );
  });

  it("a missing field, by its path", () => {
    const { callSid: _, ...noSid } = partial;
    expect(message(noSid)).toBe("partial.callSid is missing, expected a string");
    expect(message({ ...examples["call.ended"], reason: undefined })).toBe(
      "call.ended.reason is missing, expected a string",
    );
  });

  it("a profile without its punctuation flag", () => {
    expect(message({ ...examples["call.started"], profile: { name: "fast" } })).toBe(
      "call.started.profile.punctuation is missing, expected a boolean",
    );
    expect(message({ ...examples["call.started"], profile: "fast" })).toBe(
      "call.started.profile is a string, expected an object",
    );
  });

  it("a field of the wrong type or range", () => {
    expect(message({ ...partial, seq: -1 })).toBe("partial.seq is -1, expected an integer >= 0");
    expect(message({ ...partial, seq: 1.5 })).toBe("partial.seq is 1.5, expected an integer >= 0");
    expect(message({ ...partial, wallMs: "1000" })).toBe("partial.wallMs is a string, expected a number >= 0");
    expect(message({ ...partial, revised: 0 })).toBe("partial.revised is 0, expected a boolean");
    expect(message({ ...final, confidence: 1.2 })).toBe("final.confidence is 1.2, expected a number in 0..1");
    expect(message({ ...final, latencyMs: null })).toBe("final.latencyMs is null, expected a number >= 0");
  });

  it("an utterance id that does not belong to the call", () => {
    expect(message({ ...partial, utteranceId: "CA2:u3" })).toBe(
      'partial.utteranceId "CA2:u3" is not "CA1:u<n>" (n = 1, 2, ...)',
    );
    expect(message({ ...partial, utteranceId: "CA1:u0" })).toMatch(/utteranceId "CA1:u0" is not/);
  });

  it("a stable prefix that is not a prefix of the text", () => {
    expect(message({ ...partial, stable: "לא זה" })).toBe("partial.stable is not a prefix of partial.text");
  });

  it("a volatile tail that is not the rest of the text", () => {
    expect(message({ ...partial, volatile: "תור" })).toBe(
      "partial.volatile is not the rest of partial.text after stable",
    );
  });

  it("a final that is not stable", () => {
    expect(message({ ...final, stable: false })).toBe("final.stable is false, expected true");
  });

  it("audio that ends before it starts", () => {
    expect(message({ ...final, audioStartMs: 3000 })).toBe("final.audioEndMs (2100) is before audioStartMs (3000)");
  });

  it("without repeating transcript text in the message", () => {
    expect(message({ ...final, text: 7 })).toBe("final.text is 7, expected a string");
    expect(message({ ...final, engine: "" })).toBe("final.engine is empty");
    expect(message({ ...partial, stable: "סוד" })).not.toContain("סוד");
  });
});

describe("encodeEvent and decodeEvent", () => {
  it("round-trip every event type", () => {
    for (const e of Object.values(examples)) {
      expect(decodeEvent(encodeEvent(e as unknown as TranscriptEvent))).toEqual({ ok: true, event: e });
    }
  });

  it("refuse text that is not JSON", () => {
    expect(decodeEvent("{nope")).toEqual({ ok: false, message: "event is not JSON (5 characters)" });
  });

  it("refuse an oversized text before parsing it", () => {
    expect(decodeEvent(" ".repeat(256 * 1024 + 1))).toMatchObject({
      ok: false,
      message: expect.stringMatching(/limit/),
    });
  });
});

describe("event helpers", () => {
  it("build utterance ids from the call and a 1-based number", () => {
    expect(utteranceIdOf("CA9", 4)).toBe("CA9:u4");
  });

  it("tell utterance events from call events", () => {
    expect(Object.values(examples).map((e) => isUtteranceEvent(e as unknown as TranscriptEvent))).toEqual([
      false,
      true,
      true,
      true,
      false,
      false,
      ...Array<boolean>(8).fill(false), // speech, dtmf, playback and barge_in events
    ]);
  });

  it("join stable and volatile with one space only when both have text", () => {
    expect(joinStable("to be", "or not")).toBe("to be or not");
    expect(joinStable("", "or not")).toBe("or not");
    expect(joinStable("to be", "")).toBe("to be");
  });
});

describe("parser properties", () => {
  it("never throws, whatever it is given", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const r = parseTranscriptEvent(value);
        expect(typeof r.ok).toBe("boolean");
      }),
    );
  });

  it("never throws on events with one field replaced by anything", () => {
    const base = fc.constantFrom(...Object.values(examples));
    fc.assert(
      fc.property(base, fc.string({ maxLength: 12 }), fc.anything(), (e, key, value) => {
        const k = Object.keys(e)[key.length % Object.keys(e).length]!;
        const r = parseTranscriptEvent({ ...e, [k]: value });
        if (!r.ok) expect(r.message).toMatch(/^(event|[a-z._]+\.[a-zA-Z]+) /);
      }),
    );
  });

  it("returns what it accepted unchanged through encode and decode", () => {
    const text = fc.array(fc.constantFrom("שלום", "to", "be", 'צה"ל'), { maxLength: 6 }).map((w) => w.join(" "));
    const arbPartial = fc
      .record({ text, split: fc.nat(), seq: fc.nat(), wallMs: fc.nat(), audioEndMs: fc.nat(), revised: fc.boolean() })
      .map(({ text, split, seq, wallMs, audioEndMs, revised }) => {
        const words = text ? text.split(" ") : [];
        const k = words.length ? split % (words.length + 1) : 0;
        const stable = words.slice(0, k).join(" ");
        const volatile = words.slice(k).join(" ");
        return { ...partial, text, stable, volatile, seq, wallMs, audioStartMs: 0, audioEndMs, revised };
      });
    fc.assert(
      fc.property(arbPartial, (e) => {
        const parsed = parseTranscriptEvent(e);
        expect(parsed).toEqual({ ok: true, event: e });
        expect(decodeEvent(encodeEvent(e as TranscriptEvent))).toEqual(parsed);
      }),
    );
  });
});

describe("a final's alternatives (the final pass)", () => {
  const withPass = { ...final, alternatives: [{ engine: "whisper", text: "אני רוצה לקבוע תור." }] };

  it("are accepted and kept as they are", () => {
    expect(parseTranscriptEvent(withPass)).toEqual({ ok: true, event: withPass });
    expect(decodeEvent(encodeEvent(withPass as TranscriptEvent))).toEqual({ ok: true, event: withPass });
  });

  it("lose fields this version does not know", () => {
    const r = parseTranscriptEvent({ ...final, alternatives: [{ engine: "whisper", text: "x", decodeMs: 300 }] });
    expect(r).toEqual({ ok: true, event: { ...final, alternatives: [{ engine: "whisper", text: "x" }] } });
  });

  it("are refused when malformed, by their path", () => {
    expect(message({ ...final, alternatives: "whisper" })).toBe(
      "final.alternatives is a string, expected an array of up to 4 objects",
    );
    expect(message({ ...final, alternatives: Array(5).fill({ engine: "whisper", text: "" }) })).toBe(
      "final.alternatives is an array, expected an array of up to 4 objects",
    );
    expect(message({ ...final, alternatives: [7] })).toBe("final.alternatives[0] is 7, expected an object");
    expect(message({ ...final, alternatives: [{ text: "x" }] })).toBe(
      "final.alternatives[0].engine is missing, expected a string",
    );
    expect(message({ ...final, alternatives: [{ engine: "whisper", text: 3 }] })).toBe(
      "final.alternatives[0].text is 3, expected a string",
    );
  });

  it("never make the parser throw, whatever they are", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const r = parseTranscriptEvent({ ...final, alternatives: value });
        if (!r.ok) expect(r.message).toMatch(/^final\.alternatives/);
      }),
    );
  });
});
