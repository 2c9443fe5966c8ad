/**
 * The call simulator's audio loader: converts any audio file to 8 kHz mono mu-law outside the
 * edge, the way Twilio delivers a call. WAV (PCM 8/16/24/32-bit, IEEE float 32/64-bit, G.711
 * mu-law and A-law; any rate, any channel count) is read here; anything else goes through ffmpeg
 * when it is on PATH.
 *
 * The WAV reader and the resampler are hand-written: this machine has no ffmpeg or sox, and the
 * simulator stays dependency-free for the WAV files every test and benchmark uses.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { MULAW_DECODE_TABLE, encodeMulaw } from "@ozen/shared";

/** A call's audio as Twilio would send it: 8 kHz mono, PCM16 and its mu-law encoding. */
export interface LoadedAudio {
  readonly sampleRateHz: 8000;
  readonly pcm: Int16Array;
  /** `pcm` in G.711 mu-law, one byte a sample. */
  readonly mulaw: Uint8Array;
  /** The file's own rate and channel count; 0 when ffmpeg decoded it and did not report them. */
  readonly sourceRateHz: number;
  readonly sourceChannels: number;
  readonly durationMs: number;
}

/** A decoded WAV file, mixed down to one channel. */
export interface DecodedWav {
  readonly sampleRateHz: number;
  /** Channels in the file (before the mix-down). */
  readonly channels: number;
  /** Mono, nominally -1..1 (float WAVs may exceed it). */
  readonly samples: Float32Array;
}

const OUTPUT_RATE_HZ = 8000;

/** A WAV that is well formed but in an encoding this reader does not decode; ffmpeg may. */
class UnsupportedWavEncoding extends Error {}

// ---------------------------------------------------------------------------------------------
// WAV

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_ALAW = 0x0006;
const WAVE_FORMAT_MULAW = 0x0007;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

// Names for the encodings people meet in the wild, so the error says what the file is.
const FORMAT_NAMES: Readonly<Record<number, string>> = {
  0x0002: "Microsoft ADPCM",
  0x0011: "IMA ADPCM",
  0x0031: "GSM 6.10",
  0x0050: "MPEG audio",
  0x0055: "MP3",
  0x0064: "G.726 ADPCM",
};

// Bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID; bytes 0..1 carry the format tag.
const EXTENSIBLE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

const NOT_WAV_HINT =
  "only WAV is read natively; other formats (mp3, flac, ogg, m4a, ...) are converted with ffmpeg when it is on PATH";

type SampleEncoding = "pcm8" | "pcm16" | "pcm24" | "pcm32" | "float32" | "float64" | "mulaw" | "alaw";

const BYTES_PER_SAMPLE: Readonly<Record<SampleEncoding, number>> = {
  pcm8: 1,
  pcm16: 2,
  pcm24: 3,
  pcm32: 4,
  float32: 4,
  float64: 8,
  mulaw: 1,
  alaw: 1,
};

function fourcc(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(bytes[offset]!, bytes[offset + 1]!, bytes[offset + 2]!, bytes[offset + 3]!);
}

/** True when the bytes open with a RIFF-family WAVE header (the file is meant to be a WAV). */
function looksLikeWav(bytes: Uint8Array): boolean {
  if (bytes.length < 12) return false;
  const riff = fourcc(bytes, 0);
  return (riff === "RIFF" || riff === "RIFX" || riff === "RF64") && fourcc(bytes, 8) === "WAVE";
}

/**
 * Reads a RIFF/WAVE file into mono float samples (channels averaged), at the file's own rate.
 * Walks the chunks (unknown ones such as LIST are skipped, odd sizes padded) and reads PCM
 * 8/16/24/32-bit, IEEE float 32/64-bit, mu-law and A-law, plain or WAVE_FORMAT_EXTENSIBLE.
 * Throws an Error whose message starts with `name` and says what is wrong.
 */
export function readWav(bytes: Uint8Array, name = "WAV data"): DecodedWav {
  if (!looksLikeWav(bytes)) throw new Error(`${name}: not a WAV file (no RIFF/WAVE header); ${NOT_WAV_HINT}`);
  const riff = fourcc(bytes, 0);
  if (riff === "RIFX") throw new UnsupportedWavEncoding(`${name}: big-endian (RIFX) WAV is not supported`);
  if (riff === "RF64") throw new UnsupportedWavEncoding(`${name}: RF64 (WAV over 4 GB) is not supported`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: { formatTag: number; channels: number; rateHz: number; blockAlign: number; bits: number } | undefined;
  let data: Uint8Array | undefined;
  // The RIFF size field is often wrong (streamed writers leave a placeholder): walk to the end.
  for (let offset = 12; offset + 8 <= bytes.length;) {
    const id = fourcc(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    const fits = body + size <= bytes.length;
    if (id === "fmt " && fmt === undefined) {
      if (!fits)
        throw new Error(`${name}: fmt chunk is ${size} bytes but the file ends ${bytes.length - body} bytes in`);
      if (size < 16) throw new Error(`${name}: fmt chunk is ${size} bytes, expected at least 16`);
      fmt = readFmt(bytes, view, body, size, name);
    } else if (id === "data" && data === undefined) {
      // A data size past the end is a streamed (0xFFFFFFFF) or truncated file: take what is there.
      data = bytes.subarray(body, fits ? body + size : bytes.length);
    }
    if (!fits) break;
    offset = body + size + (size & 1); // chunks are word-aligned: an odd size is followed by a pad byte
  }
  if (!fmt) throw new Error(`${name}: WAV has no fmt chunk`);
  if (!data) throw new Error(`${name}: WAV has no data chunk`);

  const { formatTag, channels, rateHz, blockAlign, bits } = fmt;
  if (channels === 0) throw new Error(`${name}: WAV has 0 channels`);
  if (rateHz === 0) throw new Error(`${name}: WAV sample rate is 0 Hz`);
  const encoding = sampleEncoding(formatTag, bits, name);
  const frameBytes = BYTES_PER_SAMPLE[encoding] * channels;
  if (blockAlign !== frameBytes) {
    throw new UnsupportedWavEncoding(
      `${name}: block align is ${blockAlign} bytes, expected ${frameBytes} for ${channels} channel(s) of ${bits}-bit samples`,
    );
  }
  const frames = Math.floor(data.length / frameBytes); // a partial last frame is dropped
  const interleaved = decodeSamples(data, encoding, frames * channels);
  return { sampleRateHz: rateHz, channels, samples: mixToMono(interleaved, channels) };
}

function readFmt(bytes: Uint8Array, view: DataView, body: number, size: number, name: string) {
  let formatTag = view.getUint16(body, true);
  const channels = view.getUint16(body + 2, true);
  const rateHz = view.getUint32(body + 4, true);
  const blockAlign = view.getUint16(body + 12, true);
  const bits = view.getUint16(body + 14, true); // the container size when extensible
  if (formatTag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < 40) throw new Error(`${name}: extensible fmt chunk is ${size} bytes, expected 40`);
    const guid = body + 24;
    const tail = bytes.subarray(guid + 2, guid + 16);
    if (!EXTENSIBLE_GUID_TAIL.every((b, i) => tail[i] === b)) {
      throw new UnsupportedWavEncoding(`${name}: extensible WAV with a non-standard sub-format GUID is not supported`);
    }
    // Valid bits below the container size sit in the high bits, so the container reads correctly.
    formatTag = view.getUint16(guid, true);
  }
  return { formatTag, channels, rateHz, blockAlign, bits };
}

function sampleEncoding(formatTag: number, bits: number, name: string): SampleEncoding {
  switch (formatTag) {
    case WAVE_FORMAT_PCM:
      if (bits === 8) return "pcm8";
      if (bits === 16) return "pcm16";
      if (bits === 24) return "pcm24";
      if (bits === 32) return "pcm32";
      throw new UnsupportedWavEncoding(`${name}: ${bits}-bit PCM is not supported (8, 16, 24 and 32-bit are)`);
    case WAVE_FORMAT_IEEE_FLOAT:
      if (bits === 32) return "float32";
      if (bits === 64) return "float64";
      throw new UnsupportedWavEncoding(`${name}: ${bits}-bit float is not supported (32 and 64-bit are)`);
    case WAVE_FORMAT_MULAW:
      if (bits === 8) return "mulaw";
      throw new UnsupportedWavEncoding(`${name}: ${bits}-bit mu-law is not supported (8-bit is)`);
    case WAVE_FORMAT_ALAW:
      if (bits === 8) return "alaw";
      throw new UnsupportedWavEncoding(`${name}: ${bits}-bit A-law is not supported (8-bit is)`);
    default: {
      const tag = `0x${formatTag.toString(16).padStart(4, "0")}`;
      const what = FORMAT_NAMES[formatTag] ? `${FORMAT_NAMES[formatTag]} (format ${tag})` : `format ${tag}`;
      throw new UnsupportedWavEncoding(`${name}: ${what} WAV is not supported (PCM, IEEE float, mu-law and A-law are)`);
    }
  }
}

const MULAW_TO_FLOAT = Float32Array.from(MULAW_DECODE_TABLE, (s) => s / 32768);

// G.711 A-law decode (ITU-T G.711 reference algorithm). Written out because @ozen/shared has only
// mu-law and the tools package takes no audio dependency; the test checks it against alawmulaw.
function alawToLinear(code: number): number {
  const a = code ^ 0x55;
  const exponent = (a >> 4) & 0x07;
  const mantissa = a & 0x0f;
  const magnitude = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1);
  return a & 0x80 ? magnitude : -magnitude;
}

const ALAW_TO_FLOAT = Float32Array.from({ length: 256 }, (_, code) => alawToLinear(code) / 32768);

/** Decodes `count` little-endian samples into floats, full scale = 1. */
function decodeSamples(data: Uint8Array, encoding: SampleEncoding, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (encoding) {
    case "pcm8": // unsigned, 128 is silence
      for (let i = 0; i < count; i++) out[i] = (data[i]! - 128) / 128;
      break;
    case "pcm16":
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true) / 32768;
      break;
    case "pcm24":
      for (let i = 0, o = 0; i < count; i++, o += 3) {
        out[i] = (((data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16)) << 8) >> 8) / 8388608;
      }
      break;
    case "pcm32":
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true) / 2147483648;
      break;
    case "float32":
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case "float64":
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case "mulaw":
      for (let i = 0; i < count; i++) out[i] = MULAW_TO_FLOAT[data[i]!]!;
      break;
    case "alaw":
      for (let i = 0; i < count; i++) out[i] = ALAW_TO_FLOAT[data[i]!]!;
      break;
  }
  return out;
}

function mixToMono(interleaved: Float32Array, channels: number): Float32Array {
  if (channels === 1) return interleaved;
  const frames = interleaved.length / channels;
  const out = new Float32Array(frames);
  for (let f = 0, i = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += interleaved[i++]!;
    out[f] = sum / channels;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Resampling

// Filter design, as fractions of the lower rate's Nyquist frequency: flat to 3.4 kHz at 8 kHz
// (the telephone band), 80 dB down from 4 kHz on, so nothing folds back into the call audio.
const PASSBAND_EDGE = 0.85;
const STOPBAND_EDGE = 1.0;
const STOPBAND_DB = 80;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series), for the Kaiser window. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x / 2) ** 2;
  for (let k = 1; term > 1e-12 * sum; k++) {
    term *= q / (k * k);
    sum += term;
  }
  return sum;
}

/**
 * Band-limited resampling between whole-hertz rates (44100 -> 8000, 16000 -> 8000, 48000 -> 8000,
 * 8000 -> 16000, ...): a Kaiser-windowed sinc low-pass at the lower rate's Nyquist, applied as a
 * polyphase filter for the exact rational ratio. Output sample n is at input time n * fromHz /
 * toHz (no delay); outside the input counts as silence. Output length is
 * ceil(input.length * toHz / fromHz). Returns a copy when the rates are equal.
 */
export function resample(input: Float32Array, fromHz: number, toHz: number): Float32Array {
  if (!Number.isInteger(fromHz) || !Number.isInteger(toHz) || fromHz <= 0 || toHz <= 0) {
    throw new RangeError(`resample: rates must be positive whole hertz, got ${fromHz} Hz -> ${toHz} Hz`);
  }
  if (fromHz === toHz) return input.slice();
  const g = gcd(fromHz, toHz);
  const up = toHz / g; // polyphase branches: output n lands on input n * down / up
  const down = fromHz / g;

  // Kaiser design (Oppenheim & Schafer): beta and length from the stopband and transition width.
  const lowerRateHz = Math.min(fromHz, toHz);
  const toInputCycles = lowerRateHz / 2 / fromHz; // fraction of lower Nyquist -> cycles per input sample
  const cutoff = ((PASSBAND_EDGE + STOPBAND_EDGE) / 2) * toInputCycles;
  const transitionRad = 2 * Math.PI * (STOPBAND_EDGE - PASSBAND_EDGE) * toInputCycles;
  const beta = 0.1102 * (STOPBAND_DB - 8.7);
  const halfWidth = (STOPBAND_DB - 7.95) / (2.285 * transitionRad) / 2; // in input samples
  const reach = 2 * Math.ceil(halfWidth / 2); // even, so taps is a multiple of 4
  const taps = 2 * reach; // input samples first - reach + 1 .. first + reach for each output
  const windowNorm = besselI0(beta);

  // One row of taps per phase, built when first needed, each normalised to unit DC gain.
  const rows: (Float32Array | undefined)[] = new Array<Float32Array | undefined>(up);
  const row = (phase: number): Float32Array => {
    const frac = phase / up;
    const r = new Float32Array(taps);
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const x = j - reach + 1 - frac; // distance from the output instant, in input samples
      const t = x / halfWidth;
      if (t <= -1 || t >= 1) continue;
      const sinc = x === 0 ? 1 : Math.sin(2 * Math.PI * cutoff * x) / (2 * Math.PI * cutoff * x);
      const w = besselI0(beta * Math.sqrt(1 - t * t)) / windowNorm;
      r[j] = sinc * w;
      sum += sinc * w;
    }
    for (let j = 0; j < taps; j++) r[j] = r[j]! / sum;
    rows[phase] = r;
    return r;
  };

  const n = input.length;
  const out = new Float32Array(Math.ceil((n * up) / down));
  const wholeStep = Math.floor(down / up);
  const phaseStep = down % up;
  let base = 0; // floor(k * down / up) for output k
  let phase = 0; // (k * down) % up
  for (let k = 0; k < out.length; k++) {
    const coef = rows[phase] ?? row(phase);
    const first = base - reach + 1;
    let acc = 0;
    if (first >= 0 && first + taps <= n) {
      // Four running sums (taps is a multiple of 4) keep the floating-point adder busy: ~1.6x faster.
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let j = 0, i = first; j < taps; j += 4, i += 4) {
        acc += coef[j]! * input[i]!;
        a1 += coef[j + 1]! * input[i + 1]!;
        a2 += coef[j + 2]! * input[i + 2]!;
        a3 += coef[j + 3]! * input[i + 3]!;
      }
      acc += a1 + a2 + a3;
    } else {
      const jEnd = Math.min(taps, n - first);
      for (let j = Math.max(0, -first); j < jEnd; j++) acc += coef[j]! * input[first + j]!;
    }
    out[k] = acc;
    base += wholeStep;
    phase += phaseStep;
    if (phase >= up) {
      phase -= up;
      base++;
    }
  }
  return out;
}

/** Float samples (full scale = 1) to PCM16: times 32768, rounded, clipped; NaN becomes 0. */
export function floatToPcm16(x: Float32Array): Int16Array {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const s = Math.round(x[i]! * 32768);
    out[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s; // NaN stores as 0
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ffmpeg, for everything that is not a WAV this file reads

type FfmpegResult = { ok: true; pcm: Int16Array; sourceRateHz: number; sourceChannels: number } | { ok: false };

/** Decodes a file with ffmpeg to 8 kHz mono s16le; `{ ok: false }` when ffmpeg is not on PATH. */
function decodeWithFfmpeg(file: string): FfmpegResult {
  const args = ["-hide_banner", "-nostdin", "-nostats", "-i", file, "-map", "0:a:0", "-vn"];
  args.push("-ac", "1", "-ar", String(OUTPUT_RATE_HZ), "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1");
  const r = spawnSync("ffmpeg", args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 30 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === "ENOENT") return { ok: false };
    throw new Error(`${file}: running ffmpeg failed: ${r.error.message}`);
  }
  const stderr = r.stderr.toString("utf8");
  if (r.status !== 0) {
    const lastLine = stderr.trim().split("\n").pop()?.trim() || `exit status ${r.status ?? r.signal}`;
    throw new Error(`${file}: ffmpeg could not convert it: ${lastLine}`);
  }
  // Copy: the Buffer may sit at an odd offset in a shared pool, which Int16Array cannot view.
  const out = r.stdout;
  const pcm = new Int16Array(out.length >> 1);
  for (let i = 0; i < pcm.length; i++) pcm[i] = out.readInt16LE(2 * i);
  return { ok: true, pcm, ...inputStreamInfo(stderr) };
}

const LAYOUT_CHANNELS: Readonly<Record<string, number>> = {
  mono: 1,
  stereo: 2,
  downmix: 2,
  quad: 4,
  hexagonal: 6,
  octagonal: 8,
  hexadecagonal: 16,
};

/**
 * The rate and channel count of the first audio stream in ffmpeg's description of its input,
 * e.g. `Stream #0:0: Audio: mp3 (mp3float), 48000 Hz, mono, fltp, 64 kb/s`; 0 when not found.
 */
function inputStreamInfo(ffmpegStderr: string): { sourceRateHz: number; sourceChannels: number } {
  const input = ffmpegStderr.split(/^Output #/m)[0]!;
  const m = /Stream #\d+:\d+.*?: Audio: .*?, (\d+) Hz, ([^,\n]+)/.exec(input);
  if (!m) return { sourceRateHz: 0, sourceChannels: 0 };
  const layout = m[2]!.trim().replace(/\(.*\)$/, ""); // "5.1(side)" -> "5.1"
  const counted = /^(\d+) channels$/.exec(layout);
  const dotted = /^(\d+)\.(\d+)$/.exec(layout); // main.lfe, e.g. 5.1 = 6
  const channels = counted
    ? Number(counted[1])
    : dotted
      ? Number(dotted[1]) + Number(dotted[2])
      : (LAYOUT_CHANNELS[layout] ?? 0);
  return { sourceRateHz: Number(m[1]), sourceChannels: channels };
}

// ---------------------------------------------------------------------------------------------

/**
 * Loads an audio file as Twilio would send it: 8 kHz mono PCM16 and mu-law. WAVs are decoded
 * and resampled here; other files (and WAV encodings not read here, such as ADPCM) go through
 * ffmpeg when it is on PATH. Throws an Error naming the file and what to do.
 */
export function loadAudio8k(file: string): LoadedAudio {
  const bytes = new Uint8Array(readFileSync(file));
  let pcm: Int16Array;
  let sourceRateHz: number;
  let sourceChannels: number;
  try {
    const wav = readWav(bytes, file);
    pcm = floatToPcm16(resample(wav.samples, wav.sampleRateHz, OUTPUT_RATE_HZ));
    sourceRateHz = wav.sampleRateHz;
    sourceChannels = wav.channels;
  } catch (err) {
    const isWav = looksLikeWav(bytes);
    if (isWav && !(err instanceof UnsupportedWavEncoding)) throw err; // a broken WAV: ffmpeg will not do better
    const converted = decodeWithFfmpeg(file);
    if (!converted.ok) {
      throw new Error(
        isWav
          ? `${(err as Error).message}; ffmpeg would convert it but is not on PATH: install ffmpeg or convert the file to 16-bit PCM WAV`
          : `${file}: not a WAV file; only WAV is read natively, and ffmpeg, which converts the other formats (mp3, flac, ogg, m4a, ...), is not on PATH: install ffmpeg or convert the file to WAV`,
      );
    }
    ({ pcm, sourceRateHz, sourceChannels } = converted);
  }
  return {
    sampleRateHz: OUTPUT_RATE_HZ,
    pcm,
    mulaw: encodeMulaw(pcm),
    sourceRateHz,
    sourceChannels,
    durationMs: (pcm.length * 1000) / OUTPUT_RATE_HZ,
  };
}
