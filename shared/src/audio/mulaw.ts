/**
 * G.711 mu-law codec by lookup table.
 *
 * Decode is a 256-entry Int16 table written into a caller-owned Int16Array, so the hot path
 * allocates nothing. Encode is a 65536-entry table (64 KiB) indexed by the whole 16-bit sample,
 * built once at module load: exact for every input, including the negative values whose low bits
 * a 14-bit table would round the wrong way.
 */

const BIAS = 0x84; // 132: the G.711 mu-law bias added before segment search
const CLIP = 32635; // largest magnitude that survives the bias without overflow

/** The G.711 decode of one mu-law code (the formula; the table is built from it). */
export function mulawToLinearFormula(code: number): number {
  const u = ~code & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

/** The G.711 encode of one 16-bit linear sample (the formula; the table is built from it). */
export function linearToMulawFormula(sample: number): number {
  let s = sample | 0;
  const sign = s < 0 ? 0x80 : 0x00;
  if (s < 0) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** mu-law code -> PCM16 sample, all 256 codes. */
export const MULAW_DECODE_TABLE: Int16Array = (() => {
  const t = new Int16Array(256);
  for (let i = 0; i < 256; i++) t[i] = mulawToLinearFormula(i);
  return t;
})();

// Encode table indexed by sample + 32768.
const ENCODE_TABLE: Uint8Array = (() => {
  const t = new Uint8Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = linearToMulawFormula(i - 32768);
  return t;
})();

/**
 * Decodes `src` mu-law bytes into `out` starting at `outOffset`. Returns the number of samples
 * written (always `src.length`); `out` must have room for them.
 */
export function decodeMulawInto(src: Uint8Array, out: Int16Array, outOffset = 0): number {
  const t = MULAW_DECODE_TABLE;
  const n = src.length;
  if (outOffset === 0) {
    for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
  } else {
    for (let i = 0; i < n; i++) out[outOffset + i] = t[src[i]!]!;
  }
  return n;
}

/** Encodes PCM16 samples into `out` mu-law bytes. Returns the number of bytes written. */
export function encodeMulawInto(src: Int16Array, out: Uint8Array, outOffset = 0): number {
  const t = ENCODE_TABLE;
  const n = src.length;
  for (let i = 0; i < n; i++) out[outOffset + i] = t[src[i]! + 32768]!;
  return n;
}

/** Allocating convenience for tools and tests (not for the hot path). */
export function encodeMulaw(src: Int16Array): Uint8Array {
  const out = new Uint8Array(src.length);
  encodeMulawInto(src, out);
  return out;
}

/** Allocating convenience for tools and tests (not for the hot path). */
export function decodeMulaw(src: Uint8Array): Int16Array {
  const out = new Int16Array(src.length);
  decodeMulawInto(src, out);
  return out;
}

/** The mu-law code Twilio sends for digital silence. */
export const MULAW_SILENCE = 0xff;
