/**
 * The decimator to 8 kHz: in-band tones pass at unity, nothing above 4 kHz folds back into the
 * band (a sweep, and single tones), and the output does not depend on how the input is chunked.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Decimator, SUPPORTED_INPUT_RATES_HZ, designDecimationFilter } from "../src/audio/resample.js";
import type { InputRateHz } from "../src/audio/resample.js";

const RATES = [16000, 24000, 48000] as const;
const AMPLITUDE = 10_000;

function tone(rateHz: number, freqHz: number, seconds: number): Int16Array {
  const n = Math.round(rateHz * seconds);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(AMPLITUDE * Math.sin((2 * Math.PI * freqHz * i) / rateHz));
  return out;
}

/** A linear chirp from f0 to f1 Hz over the whole signal. */
function sweep(rateHz: number, f0: number, f1: number, seconds: number): Int16Array {
  const n = Math.round(rateHz * seconds);
  const out = new Int16Array(n);
  const k = (f1 - f0) / seconds;
  for (let i = 0; i < n; i++) {
    const t = i / rateHz;
    out[i] = Math.round(AMPLITUDE * Math.sin(2 * Math.PI * (f0 * t + (k * t * t) / 2)));
  }
  return out;
}

function decimate(rate: InputRateHz, input: Int16Array, chunks: readonly number[] = [input.length]): Int16Array {
  const d = new Decimator(rate);
  const out = new Int16Array(d.maxOutput(input.length) + d.delayOutputSamples + chunks.length * 2 + 16);
  let at = 0;
  let written = 0;
  for (const c of chunks) {
    written += d.process(input.subarray(at, at + c), out, written);
    at += c;
  }
  written += d.process(input.subarray(at), out, written);
  written += d.flush(out, written);
  return out.subarray(0, written);
}

/** RMS of `x` without its first and last `skip` samples (filter transients). */
function rms(x: Int16Array, skip: number): number {
  let s = 0;
  let n = 0;
  for (let i = skip; i < x.length - skip; i++) {
    s += x[i]! * x[i]!;
    n++;
  }
  return Math.sqrt(s / n);
}

const db = (ratio: number) => 20 * Math.log10(ratio);

describe("Decimator", () => {
  it("supports exactly the telephone rates", () => {
    expect([...SUPPORTED_INPUT_RATES_HZ]).toEqual([8000, 16000, 24000, 48000]);
  });

  it("passes 8 kHz through untouched", () => {
    const x = tone(8000, 1000, 0.1);
    expect([...decimate(8000, x)]).toEqual([...x]);
  });

  for (const rate of RATES) {
    it(`passes in-band tones at unity within 0.05 dB (${rate} Hz)`, () => {
      for (const f of [300, 1000, 2000, 3000, 3400]) {
        const out = decimate(rate, tone(rate, f, 0.5));
        const gainDb = db(rms(out, 200) / (AMPLITUDE / Math.SQRT2));
        expect(Math.abs(gainDb), `${f} Hz: ${gainDb.toFixed(4)} dB`).toBeLessThan(0.05);
      }
    });

    it(`keeps a sweep above 4 kHz out of the band: at least 60 dB down (${rate} Hz)`, () => {
      const out = decimate(rate, sweep(rate, 4000, rate / 2 - 50, 2));
      const leakDb = db(rms(out, 200) / (AMPLITUDE / Math.SQRT2));
      expect(leakDb, `sweep leak ${leakDb.toFixed(1)} dB`).toBeLessThan(-60);
    });

    it(`attenuates single tones from 4 kHz up by at least 60 dB (${rate} Hz)`, () => {
      for (let f = 4000; f < rate / 2; f += 700) {
        const out = decimate(rate, tone(rate, f, 0.3));
        const leakDb = db(rms(out, 200) / (AMPLITUDE / Math.SQRT2));
        expect(leakDb, `${f} Hz leaks ${leakDb.toFixed(1)} dB`).toBeLessThan(-60);
      }
    });

    it(`gives the same output however the input is chunked (${rate} Hz)`, () => {
      const input = sweep(rate, 100, 7000, 0.25);
      const whole = decimate(rate, input);
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 12 }), (sizes) => {
          let left = input.length;
          const chunks = sizes.map((s) => {
            const c = Math.min(s, left);
            left -= c;
            return c;
          });
          expect([...decimate(rate, input, chunks)]).toEqual([...whole]);
        }),
        { numRuns: 25 },
      );
    });
  }

  it("writes one output per `factor` inputs, plus the delay's tail at flush", () => {
    const d = new Decimator(48000);
    const out = new Int16Array(2000);
    expect(d.process(new Int16Array(4800), out)).toBe(800);
    expect(d.flush(out)).toBeGreaterThanOrEqual(d.delayOutputSamples);
  });

  it("designs symmetric filters with unit DC gain", () => {
    for (const rate of RATES) {
      const h = designDecimationFilter(rate);
      expect(h.length % 2).toBe(1);
      expect(Math.abs(h.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
      for (let i = 0; i < h.length; i++) expect(h[i]).toBeCloseTo(h[h.length - 1 - i]!, 7);
    }
  });
});
