/**
 * The simulator's audio loader: any WAV (PCM 8/16/24/32, float 32/64, mu-law, A-law; any
 * rate and channel count) to 8 kHz mono mu-law, the way Twilio delivers a call. Other formats go
 * through ffmpeg when it is on PATH.
 *
 * The resampler is hand-written (windowed sinc, Kaiser window) because this machine has no
 * ffmpeg or sox and the simulator should not need them for WAV.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { decodeMulaw, encodeMulaw } from "@ozen/shared";

export interface LoadedAudio {
  readonly sampleRateHz: 8000;
  readonly pcm: Int16Array;
  readonly mulaw: Uint8Array;
  readonly sourceRateHz: number;
  readonly sourceChannels: number;
  readonly durationMs: number;
}

export interface DecodedWav {
  readonly sampleRateHz: number;
  readonly channels: number;
  /** Mono, -1..1. */
  readonly samples: Float32Array;
}

function alawToLinear(a: number): number {
  a ^= 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

/** Reads a RIFF/WAVE file into mono float samples. Throws with a message naming what is wrong. */
export function readWav(bytes: Uint8Array, name = "audio"): DecodedWav {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (o: number) => String.fromCharCode(bytes[o]!, bytes[o + 1]!, bytes[o + 2]!, bytes[o + 3]!);
  if (bytes.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") {
    throw new Error(`${name}: not a WAV file (only WAV is read natively; other formats need ffmpeg on PATH)`);
  }
  let fmt: { format: number; channels: number; rate: number; bits: number; align: number } | undefined;
  let data: Uint8Array | undefined;
  for (let o = 12; o + 8 <= bytes.length;) {
    const id = tag(o);
    const size = v.getUint32(o + 4, true);
    const body = o + 8;
    if (id === "fmt ") {
      let format = v.getUint16(body, true);
      if (format === 0xfffe && size >= 26) format = v.getUint16(body + 24, true); // WAVE_FORMAT_EXTENSIBLE
      fmt = {
        format,
        channels: v.getUint16(body + 2, true),
        rate: v.getUint32(body + 4, true),
        align: v.getUint16(body + 12, true),
        bits: v.getUint16(body + 14, true),
      };
    } else if (id === "data") {
      data = bytes.subarray(body, Math.min(bytes.length, body + size));
    }
    o = body + size + (size & 1);
  }
  if (!fmt) throw new Error(`${name}: WAV has no fmt chunk`);
  if (!data) throw new Error(`${name}: WAV has no data chunk`);
  const { format, channels, rate, bits } = fmt;
  if (channels < 1) throw new Error(`${name}: WAV has ${channels} channels`);
  const bytesPer = bits / 8;
  const read = sampleReader(format, bits, name);
  const frameBytes = bytesPer * channels;
  const frames = Math.floor(data.length / frameBytes);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(dv, i * frameBytes + c * bytesPer);
    out[i] = sum / channels;
  }
  return { sampleRateHz: rate, channels, samples: out };
}

function sampleReader(format: number, bits: number, name: string): (v: DataView, o: number) => number {
  if (format === 1) {
    if (bits === 8) return (v, o) => (v.getUint8(o) - 128) / 128;
    if (bits === 16) return (v, o) => v.getInt16(o, true) / 32768;
    if (bits === 24)
      return (v, o) => (((v.getUint8(o + 2) << 24) | (v.getUint8(o + 1) << 16) | (v.getUint8(o) << 8)) >> 8) / 8388608;
    if (bits === 32) return (v, o) => v.getInt32(o, true) / 2147483648;
  } else if (format === 3) {
    if (bits === 32) return (v, o) => v.getFloat32(o, true);
    if (bits === 64) return (v, o) => v.getFloat64(o, true);
  } else if (format === 7 && bits === 8) {
    const table = decodeMulaw(Uint8Array.from({ length: 256 }, (_, i) => i));
    return (v, o) => table[v.getUint8(o)]! / 32768;
  } else if (format === 6 && bits === 8) {
    return (v, o) => alawToLinear(v.getUint8(o)) / 32768;
  }
  throw new Error(`${name}: WAV format ${format} with ${bits}-bit samples is not supported`);
}

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/**
 * Band-limited resampling by windowed sinc (Kaiser, beta 8.6, ~80 dB stopband), cutoff at 0.9
 * of the lower Nyquist. Identity when the rates match.
 */
export function resample(input: Float32Array, fromHz: number, toHz: number): Float32Array {
  if (fromHz === toHz) return input.slice();
  const ratio = toHz / fromHz;
  const cutoff = 0.9 * Math.min(1, ratio); // of the input Nyquist
  const halfWidth = Math.ceil(16 / cutoff); // taps each side, in input samples
  const beta = 8.6;
  const i0beta = besselI0(beta);
  const outLen = Math.floor(input.length * ratio);
  const out = new Float32Array(outLen);
  for (let n = 0; n < outLen; n++) {
    const center = n / ratio;
    const first = Math.max(0, Math.ceil(center - halfWidth));
    const last = Math.min(input.length - 1, Math.floor(center + halfWidth));
    let acc = 0;
    for (let k = first; k <= last; k++) {
      const x = k - center;
      const w = besselI0(beta * Math.sqrt(Math.max(0, 1 - (x / halfWidth) ** 2))) / i0beta;
      const arg = Math.PI * cutoff * x;
      const sinc = arg === 0 ? 1 : Math.sin(arg) / arg;
      acc += input[k]! * cutoff * sinc * w;
    }
    out[n] = acc;
  }
  return out;
}

export function floatToPcm16(x: Float32Array): Int16Array {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(x[i]! * 32768)));
  return out;
}

function viaFfmpeg(file: string): Float32Array {
  const r = spawnSync("ffmpeg", ["-v", "error", "-i", file, "-ac", "1", "-ar", "8000", "-f", "s16le", "-"], {
    maxBuffer: 1 << 30,
  });
  if (r.error) {
    throw new Error(
      `${file}: not a WAV file, and ffmpeg is not on PATH to convert it (install ffmpeg or convert to WAV)`,
    );
  }
  if (r.status !== 0) throw new Error(`${file}: ffmpeg could not read it: ${r.stderr.toString().trim().slice(0, 200)}`);
  const pcm = new Int16Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength >> 1);
  return Float32Array.from(pcm, (s) => s / 32768);
}

/** Loads any audio file as 8 kHz mono PCM16 and mu-law (what Twilio would send). */
export function loadAudio8k(file: string): LoadedAudio {
  const bytes = new Uint8Array(readFileSync(file));
  const isWav = bytes.length >= 12 && String.fromCharCode(...bytes.subarray(0, 4)) === "RIFF";
  let samples: Float32Array;
  let sourceRateHz = 8000;
  let sourceChannels = 1;
  if (isWav) {
    const wav = readWav(bytes, path.basename(file));
    sourceRateHz = wav.sampleRateHz;
    sourceChannels = wav.channels;
    samples = resample(wav.samples, wav.sampleRateHz, 8000);
  } else {
    samples = viaFfmpeg(file);
  }
  const pcm = floatToPcm16(samples);
  return {
    sampleRateHz: 8000,
    pcm,
    mulaw: encodeMulaw(pcm),
    sourceRateHz,
    sourceChannels,
    durationMs: (pcm.length * 1000) / 8000,
  };
}
