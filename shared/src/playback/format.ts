/**
 * The agent's audio formats and their conversion to what Twilio plays (mu-law 8 kHz): the
 * format check with a message naming what is supported, a streaming converter (any chunking,
 * odd bytes carried), the `Content-Type` of `POST /calls/{CallSid}/play`, and a streaming WAV
 * header reader. Pure: no I/O, no clock.
 */
import { encodeMulawInto } from "../audio/mulaw.js";
import { Decimator, SUPPORTED_INPUT_RATES_HZ, isSupportedRate } from "../audio/resample.js";

export type AudioEncoding = "pcm16" | "mulaw";

/** An agent audio format: signed 16-bit little-endian mono PCM at a rate, or mu-law 8 kHz. */
export interface AudioFormat {
  readonly encoding: AudioEncoding;
  readonly sampleRateHz: number;
}

/** What the edge accepts, for error messages. */
export const SUPPORTED_FORMATS_TEXT = `pcm16 at ${SUPPORTED_INPUT_RATES_HZ.join(", ").replace(/, (\d+)$/, " or $1")} Hz, or mulaw at 8000 Hz`;

/** Null when `f` is supported, else a message naming what is. */
export function formatProblem(encoding: unknown, sampleRateHz: unknown): string | null {
  if (encoding !== "pcm16" && encoding !== "mulaw") {
    return `encoding ${JSON.stringify(encoding)} is not supported; ${SUPPORTED_FORMATS_TEXT}`;
  }
  if (
    typeof sampleRateHz !== "number" ||
    !isSupportedRate(sampleRateHz) ||
    (encoding === "mulaw" && sampleRateHz !== 8000)
  ) {
    return `${encoding} at sampleRate ${JSON.stringify(sampleRateHz)} is not supported; ${SUPPORTED_FORMATS_TEXT}`;
  }
  return null;
}

/** Bytes of one second of audio in `f`. */
export function bytesPerSecond(f: AudioFormat): number {
  return f.encoding === "mulaw" ? 8000 : f.sampleRateHz * 2;
}

/**
 * One utterance's converter: bytes in `format`, in chunks of any size, to mu-law 8 kHz. A PCM
 * byte split across two chunks is carried. Allocates one output array per chunk (sized for it),
 * and reuses its PCM scratch.
 */
export class MulawConverter {
  private readonly decimator: Decimator | undefined;
  private carry = -1;
  private pcm = new Int16Array(0);
  private out8k = new Int16Array(0);

  constructor(readonly format: AudioFormat) {
    this.decimator =
      format.encoding === "pcm16" && isSupportedRate(format.sampleRateHz)
        ? new Decimator(format.sampleRateHz)
        : undefined;
  }

  /** Converts a chunk; returns its mu-law 8 kHz bytes (possibly empty). */
  convert(bytes: Uint8Array): Uint8Array {
    if (this.format.encoding === "mulaw") return bytes.slice();
    const total = bytes.length + (this.carry >= 0 ? 1 : 0);
    const samples = total >> 1;
    if (this.pcm.length < samples) this.pcm = new Int16Array(Math.max(samples, 1024));
    let i = 0;
    let s = 0;
    if (this.carry >= 0 && bytes.length > 0) {
      this.pcm[s++] = (((bytes[0]! << 8) | this.carry) << 16) >> 16;
      i = 1;
      this.carry = -1;
    }
    for (; i + 1 < bytes.length; i += 2) this.pcm[s++] = (((bytes[i + 1]! << 8) | bytes[i]!) << 16) >> 16;
    if (i < bytes.length) this.carry = bytes[i]!;
    return this.encode(this.pcm.subarray(0, s), false);
  }

  /** The end of the utterance: the resampler's tail; a dangling odd byte is dropped. */
  finish(): Uint8Array {
    this.carry = -1;
    if (!this.decimator || this.decimator.factor === 1) return new Uint8Array(0);
    return this.encode(new Int16Array(0), true);
  }

  /** Whether an odd byte waits for its pair. */
  get hasCarry(): boolean {
    return this.carry >= 0;
  }

  private encode(pcm: Int16Array, flush: boolean): Uint8Array {
    const d = this.decimator!;
    const max = d.maxOutput(pcm.length) + (flush ? d.delayOutputSamples + d.factor + 8 : 0);
    if (this.out8k.length < max) this.out8k = new Int16Array(Math.max(max, 1024));
    let n = d.process(pcm, this.out8k);
    if (flush) n += d.flush(this.out8k, n);
    const out = new Uint8Array(n);
    encodeMulawInto(this.out8k.subarray(0, n), out);
    return out;
  }
}

// ---- HTTP: Content-Type ----

export type BodyFormat = { readonly kind: "wav" } | { readonly kind: "raw"; readonly format: AudioFormat };

/** The supported `Content-Type`s of `POST /calls/{CallSid}/play`, for error messages. */
export const SUPPORTED_CONTENT_TYPES_TEXT =
  "audio/wav (PCM 16-bit or mu-law, mono), audio/pcm;rate=8000|16000|24000|48000 (16-bit little-endian), or audio/x-mulaw (8 kHz)";

/** Reads a play body's `Content-Type`; a message naming the supported ones when it is not. */
export function parsePlayContentType(contentType: string | null): BodyFormat | { readonly error: string } {
  const [rawType, ...params] = (contentType ?? "").split(";").map((s) => s.trim());
  const type = (rawType ?? "").toLowerCase();
  if (type === "audio/wav" || type === "audio/x-wav" || type === "audio/wave" || type === "audio/vnd.wave")
    return { kind: "wav" };
  if (type === "audio/x-mulaw" || type === "audio/basic" || type === "audio/pcmu")
    return { kind: "raw", format: { encoding: "mulaw", sampleRateHz: 8000 } };
  if (type === "audio/pcm") {
    const rate = params.map((p) => /^rate=(\d+)$/i.exec(p)?.[1]).find((r) => r !== undefined);
    const problem = formatProblem("pcm16", rate === undefined ? undefined : Number(rate));
    if (problem) return { error: `Content-Type ${JSON.stringify(contentType)}: ${problem}` };
    return { kind: "raw", format: { encoding: "pcm16", sampleRateHz: Number(rate) } };
  }
  return {
    error: `Content-Type ${JSON.stringify(contentType ?? "")} is not supported; send ${SUPPORTED_CONTENT_TYPES_TEXT}`,
  };
}

// ---- WAV ----

/** Largest header (everything before the `data` chunk's bytes) the reader buffers. */
const MAX_WAV_HEADER_BYTES = 64 * 1024;

export type WavStep =
  | { readonly state: "need_more" }
  | { readonly state: "data"; readonly format: AudioFormat; readonly audio: Uint8Array }
  | { readonly state: "error"; readonly message: string };

/**
 * Reads a RIFF/WAVE stream's header as bytes arrive: `push` returns `need_more` until the
 * `data` chunk begins, then `data` with the format and the audio bytes of that push (later
 * pushes are all audio: `push` returns them as `data` again). Only mono PCM 16-bit (format 1,
 * or WAVE_FORMAT_EXTENSIBLE with the PCM subformat) and mu-law (format 7) at supported rates.
 */
export class WavReader {
  private head = new Uint8Array(0);
  private format: AudioFormat | undefined;
  private inData = false;

  push(bytes: Uint8Array): WavStep {
    if (this.inData) return { state: "data", format: this.format!, audio: bytes };
    const all = new Uint8Array(this.head.length + bytes.length);
    all.set(this.head);
    all.set(bytes, this.head.length);
    this.head = all;
    const r = this.parse();
    if (r.state === "need_more" && this.head.length > MAX_WAV_HEADER_BYTES) {
      return { state: "error", message: `no WAV data chunk in the first ${MAX_WAV_HEADER_BYTES} bytes` };
    }
    return r;
  }

  private parse(): WavStep {
    const b = this.head;
    if (b.length < 12) return { state: "need_more" };
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const tag = (at: number) => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
    if (tag(0) !== "RIFF" || tag(8) !== "WAVE") return { state: "error", message: "not a RIFF/WAVE file" };
    let at = 12;
    while (at + 8 <= b.length) {
      const id = tag(at);
      const size = v.getUint32(at + 4, true);
      if (id === "data") {
        if (!this.format) return { state: "error", message: "WAV data chunk before its fmt chunk" };
        this.inData = true;
        const audio = b.slice(at + 8);
        this.head = new Uint8Array(0);
        return { state: "data", format: this.format, audio };
      }
      if (at + 8 + size > b.length) return { state: "need_more" };
      if (id === "fmt ") {
        const problem = this.readFmt(v, at + 8, size);
        if (problem) return { state: "error", message: problem };
      }
      at += 8 + size + (size & 1);
    }
    return { state: "need_more" };
  }

  private readFmt(v: DataView, at: number, size: number): string | null {
    if (size < 16) return `WAV fmt chunk is ${size} bytes, expected at least 16`;
    let tag = v.getUint16(at, true);
    const channels = v.getUint16(at + 2, true);
    const rate = v.getUint32(at + 4, true);
    const bits = v.getUint16(at + 14, true);
    if (tag === 0xfffe && size >= 26) tag = v.getUint16(at + 24, true); // WAVE_FORMAT_EXTENSIBLE: subformat
    if (channels !== 1) return `WAV has ${channels} channels, expected mono; ${SUPPORTED_FORMATS_TEXT}`;
    let encoding: AudioEncoding;
    if (tag === 1 && bits === 16) encoding = "pcm16";
    else if (tag === 7 && bits === 8) encoding = "mulaw";
    else return `WAV format ${tag} with ${bits} bits is not supported; ${SUPPORTED_FORMATS_TEXT}`;
    const problem = formatProblem(encoding, rate);
    if (problem) return `WAV: ${problem}`;
    this.format = { encoding, sampleRateHz: rate };
    return null;
  }
}

/** A WAV file's bytes for `pcm` (16-bit mono) or mu-law bytes at `sampleRateHz`: tests and tools. */
export function wavBytes(audio: Int16Array | Uint8Array, sampleRateHz: number): Uint8Array {
  const mulaw = audio instanceof Uint8Array;
  const dataBytes = mulaw ? audio.length : audio.length * 2;
  const out = new Uint8Array(44 + dataBytes);
  const v = new DataView(out.buffer);
  const put = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i);
  };
  put(0, "RIFF");
  v.setUint32(4, 36 + dataBytes, true);
  put(8, "WAVE");
  put(12, "fmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, mulaw ? 7 : 1, true);
  v.setUint16(22, 1, true);
  v.setUint32(24, sampleRateHz, true);
  v.setUint32(28, sampleRateHz * (mulaw ? 1 : 2), true);
  v.setUint16(32, mulaw ? 1 : 2, true);
  v.setUint16(34, mulaw ? 8 : 16, true);
  put(36, "data");
  v.setUint32(40, dataBytes, true);
  if (mulaw) out.set(audio, 44);
  else for (let i = 0; i < audio.length; i++) v.setInt16(44 + i * 2, audio[i]!, true);
  return out;
}
