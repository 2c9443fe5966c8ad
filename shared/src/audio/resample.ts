/**
 * Decimation of PCM16 mono to 8 kHz for the fixed telephone ratios (16, 24 and 48 kHz in; 8 kHz
 * passes through). A low-pass FIR (a Kaiser-windowed sinc) removes everything above the 8 kHz
 * band before every `factor`th sample is kept; only the kept outputs are computed, which is the
 * polyphase form of decimation (the filter runs at the output rate).
 *
 * Why this filter: the telephone band is 300-3400 Hz; energy above 4 kHz must not fold back into
 * it (a TTS voice at 24 kHz has plenty). Passband edge 3400 Hz, stopband from 4000 Hz, about
 * 70 dB down (Kaiser beta 6.76): a tone at 4 kHz or above is attenuated at least 60 dB before
 * it could alias, and in-band tones pass within 0.05 dB (both tested). Taps: 117 at 16 kHz, 175
 * at 24 kHz, 347 at 48 kHz (a group delay of 3.6 ms).
 *
 * Streaming and allocation-aware: the resampler keeps the last `taps - 1` input samples between
 * calls, so chunk boundaries are seamless, and writes into a caller-owned output. Pure: no I/O.
 * No library does this for a Worker without WASM or a native module (soxr and libsamplerate are
 * native); the filter is small and its response is tested.
 */

/** The input rates the edge takes, Hz. */
export const SUPPORTED_INPUT_RATES_HZ = [8000, 16000, 24000, 48000] as const;
export type InputRateHz = (typeof SUPPORTED_INPUT_RATES_HZ)[number];

export const OUTPUT_RATE_HZ = 8000;

const PASS_EDGE_HZ = 3400;
const STOP_EDGE_HZ = 4000;
const STOPBAND_DB = 70;
/** Input samples a single `process` step works on at most (bounds the internal buffer). */
const STEP_SAMPLES = 4096;

export function isSupportedRate(rate: number): rate is InputRateHz {
  return (SUPPORTED_INPUT_RATES_HZ as readonly number[]).includes(rate);
}

/** Zeroth-order modified Bessel function of the first kind (series), for the Kaiser window. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

/**
 * The low-pass FIR for decimating `rateHz` to 8 kHz: odd length, symmetric, DC gain exactly 1.
 */
export function designDecimationFilter(rateHz: number): Float32Array {
  const transition = (STOP_EDGE_HZ - PASS_EDGE_HZ) / rateHz; // normalised, cycles/sample
  let taps = Math.ceil((STOPBAND_DB - 7.95) / (14.36 * transition)) + 1;
  if (taps % 2 === 0) taps++;
  const beta = 0.1102 * (STOPBAND_DB - 8.7);
  const fc = (PASS_EDGE_HZ + STOP_EDGE_HZ) / 2 / rateHz; // cutoff, cycles/sample
  const mid = (taps - 1) / 2;
  const h = new Float64Array(taps);
  const i0Beta = besselI0(beta);
  let sum = 0;
  for (let n = 0; n < taps; n++) {
    const m = n - mid;
    const sinc = m === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * m) / (Math.PI * m);
    const r = m / mid;
    const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0Beta;
    h[n] = sinc * w;
    sum += h[n]!;
  }
  const out = new Float32Array(taps);
  for (let n = 0; n < taps; n++) out[n] = h[n]! / sum;
  return out;
}

const filters = new Map<number, Float32Array>();

function filterFor(rateHz: number): Float32Array {
  let f = filters.get(rateHz);
  if (!f) {
    f = designDecimationFilter(rateHz);
    filters.set(rateHz, f);
  }
  return f;
}

/**
 * One stream's decimator to 8 kHz. `process` takes any number of input samples and writes the
 * 8 kHz samples they complete; `flush` writes the filter's tail at the end of the stream.
 */
export class Decimator {
  readonly factor: number;
  private readonly h: Float32Array;
  /** History (`taps - 1` samples) followed by the current step's input. */
  private readonly buf: Float32Array;
  /** Samples in `buf`. */
  private filled: number;
  /** Index in `buf` of the next input sample whose output is due (the filter's last tap). */
  private nextOut: number;

  constructor(readonly inputRateHz: InputRateHz) {
    this.factor = inputRateHz / OUTPUT_RATE_HZ;
    this.h = this.factor === 1 ? new Float32Array([1]) : filterFor(inputRateHz);
    this.buf = new Float32Array(this.h.length - 1 + STEP_SAMPLES);
    // start with a history of zeros: the first output is centred on input sample 0 after the delay
    this.filled = this.h.length - 1;
    this.nextOut = this.h.length - 1;
  }

  /** Output samples that `inputSamples` more input can produce at most (size `out` with it). */
  maxOutput(inputSamples: number): number {
    return Math.ceil(inputSamples / this.factor) + 1;
  }

  /** Filter delay, in output samples (the tail `flush` writes). */
  get delayOutputSamples(): number {
    return Math.ceil((this.h.length - 1) / 2 / this.factor);
  }

  /**
   * Decimates `input` (PCM16 at `inputRateHz`), writing into `out` from `outOffset`. Returns the
   * number of 8 kHz samples written; `out` must have room for `maxOutput(input.length)`.
   */
  process(input: Int16Array, out: Int16Array, outOffset = 0): number {
    if (this.factor === 1) {
      out.set(input, outOffset);
      return input.length;
    }
    let written = 0;
    for (let at = 0; at < input.length; at += STEP_SAMPLES) {
      const step = input.subarray(at, Math.min(input.length, at + STEP_SAMPLES));
      written += this.step(step, out, outOffset + written);
    }
    return written;
  }

  /** The filter's tail (its delay's worth of output) as if zeros followed; the stream is over. */
  flush(out: Int16Array, outOffset = 0): number {
    if (this.factor === 1) return 0;
    const zeros = new Int16Array((this.h.length - 1) / 2 + this.factor);
    return this.process(zeros, out, outOffset);
  }

  private step(input: Int16Array, out: Int16Array, outOffset: number): number {
    const { buf, h, factor } = this;
    const taps = h.length;
    for (let i = 0; i < input.length; i++) buf[this.filled + i] = input[i]!;
    this.filled += input.length;
    let written = 0;
    // output at buf index k uses buf[k - taps + 1 .. k]
    while (this.nextOut < this.filled) {
      const base = this.nextOut - taps + 1;
      let acc = 0;
      for (let t = 0; t < taps; t++) acc += h[t]! * buf[base + t]!;
      const s = Math.round(acc);
      out[outOffset + written++] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
      this.nextOut += factor;
    }
    // keep the last taps - 1 samples as history
    const keepFrom = this.filled - (taps - 1);
    buf.copyWithin(0, keepFrom, this.filled);
    this.filled = taps - 1;
    this.nextOut -= keepFrom;
    return written;
  }
}
