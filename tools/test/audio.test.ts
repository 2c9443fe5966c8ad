import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import alawmulawPkg from "alawmulaw";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it, vi, type TestContext } from "vitest";
import { decodeMulaw, encodeMulaw } from "@ozen/shared";
import { floatToPcm16, loadAudio8k, readWav, resample } from "../src/audio.js";
import { PROJECT_SPEECH, PROJECT_SPEECH_DIR, evaluationPath } from "../src/speech-data.js";
import type { EvaluationSetName } from "../src/speech-data.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-audio-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  vi.unstubAllEnvs();
});

// ---------------------------------------------------------------------------------------------
// Building WAVs in memory

function chunk(id: string, body: Uint8Array, declaredSize = body.length): Uint8Array {
  const out = Buffer.alloc(8 + body.length + (body.length & 1)); // odd bodies get a pad byte
  out.write(id, 0, "latin1");
  out.writeUInt32LE(declaredSize, 4);
  out.set(body, 8);
  return out;
}

interface WavSpec {
  formatTag: number;
  channels: number;
  rateHz: number;
  bits: number;
  data: Uint8Array;
  extensible?: boolean;
  /** Chunks between fmt and data, e.g. LIST. */
  before?: Uint8Array[];
  /** Chunks after data. */
  after?: Uint8Array[];
  /** The data chunk's size field, when it should lie (streamed files write 0xFFFFFFFF). */
  dataSize?: number;
}

function fmtBody(spec: WavSpec): Uint8Array {
  const blockAlign = spec.channels * (spec.bits / 8);
  const b = Buffer.alloc(spec.extensible ? 40 : 16);
  b.writeUInt16LE(spec.extensible ? 0xfffe : spec.formatTag, 0);
  b.writeUInt16LE(spec.channels, 2);
  b.writeUInt32LE(spec.rateHz, 4);
  b.writeUInt32LE(spec.rateHz * blockAlign, 8);
  b.writeUInt16LE(blockAlign, 12);
  b.writeUInt16LE(spec.bits, 14);
  if (spec.extensible) {
    b.writeUInt16LE(22, 16); // cbSize
    b.writeUInt16LE(spec.bits, 18); // valid bits
    b.writeUInt32LE(spec.channels === 2 ? 0x3 : 0x4, 20); // channel mask
    b.writeUInt16LE(spec.formatTag, 24); // sub-format GUID: tag + the standard tail
    Buffer.from([0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]).copy(b, 26);
  }
  return b;
}

function buildWav(spec: WavSpec): Uint8Array {
  const chunks = [
    chunk("fmt ", fmtBody(spec)),
    ...(spec.before ?? []),
    chunk("data", spec.data, spec.dataSize),
    ...(spec.after ?? []),
  ];
  const body = Buffer.concat([Buffer.from("WAVE", "latin1"), ...chunks]);
  const header = Buffer.alloc(8);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(body.length, 4);
  return new Uint8Array(Buffer.concat([header, body]));
}

function int16le(values: readonly number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeInt16LE(v, 2 * i));
  return b;
}

const pcm16 = (data: Uint8Array, channels = 1, rateHz = 8000): WavSpec => ({
  formatTag: 1,
  channels,
  rateHz,
  bits: 16,
  data,
});

function listChunk(): Uint8Array {
  const info = Buffer.concat([
    Buffer.from("INFOISFT", "latin1"),
    Buffer.from([13, 0, 0, 0]),
    Buffer.from("Lavf61.7.100\0\0"),
  ]);
  return chunk("LIST", info.subarray(0, 4 + 8 + 13)); // 25 bytes: odd, so padded
}

// ---------------------------------------------------------------------------------------------
// Signals and measurements

function sine(freqHz: number, rateHz: number, seconds: number, amplitude: number): Float32Array {
  return Float32Array.from(
    { length: Math.round(rateHz * seconds) },
    (_, n) => amplitude * Math.sin((2 * Math.PI * freqHz * n) / rateHz),
  );
}

function rms(x: ArrayLike<number>, from = 0, to = x.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += x[i]! * x[i]!;
  return Math.sqrt(sum / (to - from));
}

function zeroCrossings(x: Float32Array, from: number, to: number): number {
  let count = 0;
  for (let i = from + 1; i < to; i++) if (x[i - 1]! < 0 !== x[i]! < 0) count++;
  return count;
}

const dB = (ratio: number) => 20 * Math.log10(ratio);

// The steady middle of a 1 s signal at 8 kHz, clear of the filter's start and end.
const MIDDLE = { from: 800, to: 7200 } as const;

// ---------------------------------------------------------------------------------------------

describe("readWav", () => {
  it("reads 16-bit PCM exactly", () => {
    const wav = readWav(buildWav(pcm16(int16le([0, 1, -1, 32767, -32768, 12345]))));
    expect(wav.sampleRateHz).toBe(8000);
    expect(wav.channels).toBe(1);
    expect(Array.from(wav.samples)).toEqual([0, 1, -1, 32767, -32768, 12345].map((v) => v / 32768));
  });

  it("reads 8-bit PCM as unsigned with 128 as silence", () => {
    const wav = readWav(
      buildWav({ formatTag: 1, channels: 1, rateHz: 11025, bits: 8, data: Uint8Array.of(0, 128, 255, 64) }),
    );
    expect(wav.sampleRateHz).toBe(11025);
    expect(Array.from(wav.samples)).toEqual([-1, 0, 127 / 128, -0.5]);
  });

  it("reads 24-bit PCM with sign extension", () => {
    const data = Uint8Array.of(0xff, 0xff, 0x7f, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x00, 0x00, 0x40);
    const wav = readWav(buildWav({ formatTag: 1, channels: 1, rateHz: 48000, bits: 24, data }));
    expect(Array.from(wav.samples)).toEqual([8388607 / 8388608, -1, -1 / 8388608, 0.5]);
  });

  it("reads 32-bit PCM", () => {
    const b = Buffer.alloc(12);
    [2147483647, -2147483648, 1 << 30].forEach((v, i) => b.writeInt32LE(v, 4 * i));
    const wav = readWav(buildWav({ formatTag: 1, channels: 1, rateHz: 8000, bits: 32, data: b }));
    expect(Array.from(wav.samples)).toEqual([Math.fround(2147483647 / 2147483648), -1, 0.5]);
  });

  it("reads 32-bit and 64-bit IEEE float", () => {
    const values = [0, 0.25, -0.75, 1.5];
    const f32 = Buffer.alloc(16);
    const f64 = Buffer.alloc(32);
    values.forEach((v, i) => (f32.writeFloatLE(v, 4 * i), f64.writeDoubleLE(v, 8 * i)));
    for (const [bits, data] of [
      [32, f32],
      [64, f64],
    ] as const) {
      const wav = readWav(buildWav({ formatTag: 3, channels: 1, rateHz: 44100, bits, data }));
      expect(Array.from(wav.samples)).toEqual(values);
    }
  });

  it("decodes G.711 mu-law with the shared codec's table", () => {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const wav = readWav(buildWav({ formatTag: 7, channels: 1, rateHz: 8000, bits: 8, data: codes }));
    expect(Array.from(wav.samples)).toEqual(Array.from(decodeMulaw(codes), (s) => s / 32768));
  });

  it("decodes G.711 A-law as the alawmulaw package does", () => {
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const wav = readWav(buildWav({ formatTag: 6, channels: 1, rateHz: 8000, bits: 8, data: codes }));
    expect(Array.from(wav.samples)).toEqual(Array.from(alawmulawPkg.alaw.decode(codes), (s) => s / 32768));
  });

  it("mixes stereo to mono by averaging the channels", () => {
    const wav = readWav(buildWav(pcm16(int16le([1000, 3000, -2000, 2000, 16384, 16384]), 2, 16000)));
    expect(wav.channels).toBe(2);
    expect(Array.from(wav.samples)).toEqual([2000 / 32768, 0, 0.5]);
  });

  it("reads WAVE_FORMAT_EXTENSIBLE by its sub-format (24-bit PCM, 32-bit float)", () => {
    const pcm = readWav(
      buildWav({
        formatTag: 1,
        channels: 2,
        rateHz: 48000,
        bits: 24,
        extensible: true,
        data: Uint8Array.of(0, 0, 0x40, 0, 0, 0xc0),
      }),
    );
    expect(pcm).toMatchObject({ sampleRateHz: 48000, channels: 2 });
    expect(Array.from(pcm.samples)).toEqual([0]);
    const f = Buffer.alloc(8);
    f.writeFloatLE(0.5, 0);
    f.writeFloatLE(-0.25, 4);
    const float = readWav(buildWav({ formatTag: 3, channels: 1, rateHz: 8000, bits: 32, extensible: true, data: f }));
    expect(Array.from(float.samples)).toEqual([0.5, -0.25]);
  });

  it("skips a LIST chunk and an odd-sized chunk (with its pad byte) before data", () => {
    const wav = readWav(
      buildWav({ ...pcm16(int16le([100, -100])), before: [listChunk(), chunk("junk", Uint8Array.of(1, 2, 3))] }),
    );
    expect(Array.from(wav.samples)).toEqual([100 / 32768, -100 / 32768]);
  });

  it("reads an odd-sized 8-bit data chunk followed by its pad byte and another chunk", () => {
    const wav = readWav(
      buildWav({
        formatTag: 1,
        channels: 1,
        rateHz: 8000,
        bits: 8,
        data: Uint8Array.of(128, 192, 64),
        after: [listChunk()],
      }),
    );
    expect(Array.from(wav.samples)).toEqual([0, 0.5, -0.5]);
  });

  it("reads a streamed WAV whose data size is 0xFFFFFFFF to the end of the file", () => {
    const wav = readWav(buildWav({ ...pcm16(int16le([1, 2, 3])), dataSize: 0xffffffff }));
    expect(Array.from(wav.samples)).toEqual([1, 2, 3].map((v) => v / 32768));
  });

  it("drops a partial last frame", () => {
    const wav = readWav(buildWav(pcm16(Uint8Array.of(0, 0x40, 0, 0x40, 7), 2)));
    expect(Array.from(wav.samples)).toEqual([0.5]);
  });

  it("rejects 12-bit PCM by name", () => {
    const bytes = buildWav({ formatTag: 1, channels: 1, rateHz: 8000, bits: 12, data: new Uint8Array(4) });
    expect(() => readWav(bytes, "file.wav")).toThrow(/^file\.wav: 12-bit PCM is not supported/);
  });

  it("rejects an ADPCM WAV naming the encoding", () => {
    const bytes = buildWav({ formatTag: 0x11, channels: 1, rateHz: 8000, bits: 4, data: new Uint8Array(4) });
    expect(() => readWav(bytes, "adpcm.wav")).toThrow(/^adpcm\.wav: IMA ADPCM \(format 0x0011\) WAV is not supported/);
  });

  it("rejects a non-WAV file saying only WAV is read natively and ffmpeg converts the rest", () => {
    const mp3 = Uint8Array.from(Buffer.from("ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "latin1"));
    expect(() => readWav(mp3, "song.mp3")).toThrow(
      /^song\.mp3: not a WAV file .*only WAV is read natively; other formats \(mp3, flac.*ffmpeg when it is on PATH/,
    );
  });

  it("rejects a WAV without a data chunk", () => {
    const bytes = buildWav(pcm16(new Uint8Array(0)));
    const noData = bytes.subarray(0, 12 + 8 + 16);
    expect(() => readWav(noData, "x.wav")).toThrow("x.wav: WAV has no data chunk");
  });

  it("rejects a fmt chunk shorter than 16 bytes", () => {
    const bytes = new Uint8Array(
      Buffer.concat([Buffer.from("RIFF\0\0\0\0WAVE", "latin1"), chunk("fmt ", new Uint8Array(14))]),
    );
    expect(() => readWav(bytes, "x.wav")).toThrow("x.wav: fmt chunk is 14 bytes, expected at least 16");
  });

  it("rejects a truncated fmt chunk", () => {
    const bytes = buildWav(pcm16(new Uint8Array(0))).subarray(0, 12 + 8 + 10);
    expect(() => readWav(bytes, "x.wav")).toThrow("x.wav: fmt chunk is 16 bytes but the file ends 10 bytes in");
  });

  it("averages any number of 16-bit channels (property)", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 6 })
          .chain((channels) =>
            fc.tuple(
              fc.constant(channels),
              fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 60 * channels }),
            ),
          ),
        ([channels, raw]) => {
          const values = raw.slice(0, raw.length - (raw.length % channels));
          const wav = readWav(buildWav(pcm16(int16le(values), channels)));
          const expected = new Float32Array(values.length / channels);
          for (let f = 0; f < expected.length; f++) {
            let sum = 0;
            for (let c = 0; c < channels; c++) sum += values[f * channels + c]! / 32768;
            expected[f] = sum / channels;
          }
          expect(wav.samples).toEqual(expected);
        },
      ),
    );
  });

  it("is unaffected by unknown chunks of any size before and after data (property)", () => {
    const unknownChunk = fc
      .tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9 ]{3}$/), fc.uint8Array({ maxLength: 33 }))
      .filter(([id]) => id !== "fmt " && id !== "data")
      .map(([id, body]) => chunk(id, body));
    fc.assert(
      fc.property(
        fc.array(unknownChunk, { maxLength: 4 }),
        fc.array(unknownChunk, { maxLength: 4 }),
        fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 40 }),
        (before, after, values) => {
          const plain = readWav(buildWav(pcm16(int16le(values))));
          expect(readWav(buildWav({ ...pcm16(int16le(values)), before, after }))).toEqual(plain);
        },
      ),
    );
  });

  it("answers any chunk soup after a WAVE header with samples or an Error naming the file (property)", () => {
    const anyChunk = fc
      .record({
        id: fc.constantFrom("fmt ", "data", "LIST", "fact"),
        body: fc.uint8Array({ maxLength: 48 }),
        lie: fc.option(fc.oneof(fc.nat(100), fc.constant(0xffffffff)), { nil: undefined }),
      })
      .map(({ id, body, lie }) => chunk(id, body, lie ?? body.length));
    fc.assert(
      fc.property(fc.array(anyChunk, { maxLength: 5 }), fc.uint8Array({ maxLength: 7 }), (chunks, tail) => {
        const bytes = new Uint8Array(Buffer.concat([Buffer.from("RIFF\0\0\0\0WAVE", "latin1"), ...chunks, tail]));
        try {
          const wav = readWav(bytes, "soup.wav");
          expect(wav.samples).toBeInstanceOf(Float32Array);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect(err).not.toBeInstanceOf(RangeError);
          expect((err as Error).message).toMatch(/^soup\.wav: /);
        }
      }),
    );
  });
});

describe("resample", () => {
  it("returns an equal copy when the rates match", () => {
    const x = sine(1000, 8000, 0.01, 0.5);
    const y = resample(x, 8000, 8000);
    expect(y).toEqual(x);
    expect(y).not.toBe(x);
  });

  it("gives ceil(length * to / from) samples", () => {
    expect(resample(new Float32Array(44100), 44100, 8000).length).toBe(8000);
    expect(resample(new Float32Array(7), 48000, 8000).length).toBe(2);
    expect(resample(new Float32Array(0), 16000, 8000).length).toBe(0);
  });

  for (const fromHz of [16000, 44100, 48000]) {
    it(`keeps a 1 kHz sine's frequency, amplitude and timing from ${fromHz} Hz to 8 kHz`, () => {
      const y = resample(sine(1000, fromHz, 1, 0.5), fromHz, 8000);
      const ideal = sine(1000, 8000, 1, 0.5);
      expect(zeroCrossings(y, MIDDLE.from, MIDDLE.to)).toBe(zeroCrossings(ideal, MIDDLE.from, MIDDLE.to));
      expect(Math.abs(dB(rms(y, MIDDLE.from, MIDDLE.to) / rms(ideal, MIDDLE.from, MIDDLE.to)))).toBeLessThan(0.01);
      let worst = 0;
      for (let n = MIDDLE.from; n < MIDDLE.to; n++) worst = Math.max(worst, Math.abs(y[n]! - ideal[n]!));
      expect(worst).toBeLessThan(1e-3); // sample by sample: no delay, no distortion
    });
  }

  it("keeps the telephone band flat: a 3.4 kHz tone from 44.1 kHz within 0.1 dB", () => {
    const y = resample(sine(3400, 44100, 1, 0.5), 44100, 8000);
    expect(Math.abs(dB(rms(y, MIDDLE.from, MIDDLE.to) / (0.5 / Math.SQRT2)))).toBeLessThan(0.1);
  });

  it("attenuates a 6 kHz tone from 16 kHz (above the 4 kHz Nyquist) by more than 70 dB", () => {
    const y = resample(sine(6000, 16000, 1, 0.5), 16000, 8000);
    expect(dB(rms(y, MIDDLE.from, MIDDLE.to) / (0.5 / Math.SQRT2))).toBeLessThan(-70);
  });

  it("attenuates a 4.1 kHz tone from 44.1 kHz (just above the 4 kHz Nyquist) by more than 70 dB", () => {
    const y = resample(sine(4100, 44100, 1, 0.5), 44100, 8000);
    expect(dB(rms(y, MIDDLE.from, MIDDLE.to) / (0.5 / Math.SQRT2))).toBeLessThan(-70);
  });

  it("upsamples too: a 1 kHz sine from 8 kHz to 16 kHz", () => {
    const y = resample(sine(1000, 8000, 1, 0.5), 8000, 16000);
    const ideal = sine(1000, 16000, 1, 0.5);
    let worst = 0;
    for (let n = 1600; n < 14400; n++) worst = Math.max(worst, Math.abs(y[n]! - ideal[n]!));
    expect(worst).toBeLessThan(1e-3);
  });

  it("rejects rates that are not positive whole hertz", () => {
    expect(() => resample(new Float32Array(4), 44100.5, 8000)).toThrow(RangeError);
    expect(() => resample(new Float32Array(4), 0, 8000)).toThrow(/positive whole hertz/);
  });
});

describe("floatToPcm16", () => {
  it("scales by 32768, rounds, clips, and maps NaN to 0", () => {
    const x = Float32Array.of(0, 0.4 / 32768, 0.6 / 32768, -0.5, 1, -1, 2, -2, NaN);
    expect(Array.from(floatToPcm16(x))).toEqual([0, 0, 1, -16384, 32767, -32768, 32767, -32768, 0]);
  });

  it("inverts the readers' division by 32768 for every 16-bit sample (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -32768, max: 32767 })), (values) => {
        const back = floatToPcm16(Float32Array.from(values, (v) => v / 32768));
        expect(Array.from(back)).toEqual(values);
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------

/** Puts a fake `ffmpeg` first on PATH that records its arguments and answers as told. */
function fakeFfmpeg(answer: { stderr: string; exitCode?: number; samples?: readonly number[] }): {
  args: () => string[];
} {
  const dir = mkdtempSync(path.join(tmp, "bin-"));
  const argsFile = path.join(dir, "args.json");
  const script = `#!${process.execPath}
const fs = require("fs");
fs.writeFileSync(${JSON.stringify(argsFile)}, JSON.stringify(process.argv.slice(2)));
process.stderr.write(${JSON.stringify(answer.stderr)});
const samples = ${JSON.stringify(answer.samples ?? [])};
const out = Buffer.alloc(samples.length * 2);
samples.forEach((s, i) => out.writeInt16LE(s, 2 * i));
process.stdout.write(out);
process.exitCode = ${answer.exitCode ?? 0};
`;
  writeFileSync(path.join(dir, "ffmpeg"), script);
  chmodSync(path.join(dir, "ffmpeg"), 0o755);
  vi.stubEnv("PATH", `${dir}${path.delimiter}${process.env.PATH ?? ""}`);
  return { args: () => JSON.parse(readFileSync(argsFile, "utf8")) as string[] };
}

function withoutFfmpeg(): void {
  vi.stubEnv("PATH", mkdtempSync(path.join(tmp, "empty-bin-")));
}

const FFMPEG_MP3_STDERR = `Input #0, mp3, from 'talk.mp3':
  Metadata:
    encoder         : Lavf58.76.100
  Duration: 00:00:00.10, start: 0.025057, bitrate: 64 kb/s
  Stream #0:0: Audio: mp3 (mp3float), 48000 Hz, stereo, fltp, 64 kb/s
Stream mapping:
  Stream #0:0 -> #0:0 (mp3 (mp3float) -> pcm_s16le (native))
Output #0, s16le, to 'pipe:1':
  Stream #0:0: Audio: pcm_s16le, 8000 Hz, mono, s16, 128 kb/s
size=       2KiB time=00:00:00.10 bitrate= 128.0kbits/s speed= 100x
`;

describe("loadAudio8k", () => {
  it("turns a 16 kHz stereo WAV into 8 kHz mono PCM and the shared codec's mu-law", () => {
    const x = sine(1000, 16000, 0.5, 0.5);
    const stereo: number[] = [];
    for (const s of x) stereo.push(Math.round(s * 32767), Math.round(s * 32767));
    const file = path.join(tmp, "stereo16k.wav");
    writeFileSync(file, buildWav(pcm16(int16le(stereo), 2, 16000)));
    const audio = loadAudio8k(file);
    expect(audio).toMatchObject({ sampleRateHz: 8000, sourceRateHz: 16000, sourceChannels: 2, durationMs: 500 });
    expect(audio.pcm.length).toBe(4000);
    expect(audio.mulaw).toEqual(encodeMulaw(audio.pcm));
    expect(dB(rms(audio.pcm, 400, 3600) / (16384 / Math.SQRT2))).toBeCloseTo(0, 1);
  });

  it("passes an 8 kHz 16-bit mono WAV through sample for sample", () => {
    const values = Array.from({ length: 800 }, (_, i) => ((i * 7919) % 65536) - 32768);
    const file = path.join(tmp, "mono8k.wav");
    writeFileSync(file, buildWav(pcm16(int16le(values))));
    expect(Array.from(loadAudio8k(file).pcm)).toEqual(values);
  });

  it("converts a non-WAV file through ffmpeg when it is on PATH, reading the source format from it", () => {
    const ffmpeg = fakeFfmpeg({ stderr: FFMPEG_MP3_STDERR, samples: [0, 1000, -1000, 32767] });
    const file = path.join(tmp, "talk.mp3");
    writeFileSync(file, "ID3 not really an mp3");
    const audio = loadAudio8k(file);
    expect(Array.from(audio.pcm)).toEqual([0, 1000, -1000, 32767]);
    expect(audio).toMatchObject({ sampleRateHz: 8000, sourceRateHz: 48000, sourceChannels: 2, durationMs: 0.5 });
    const args = ffmpeg.args().join(" ");
    expect(args).toContain(`-i ${file}`);
    expect(args).toMatch(/-ac 1 -ar 8000 .*-f s16le pipe:1$/);
  });

  it("reports source channels from ffmpeg's layout names (5.1(side) is 6)", () => {
    fakeFfmpeg({
      stderr: FFMPEG_MP3_STDERR.replace("48000 Hz, stereo", "44100 Hz, 5.1(side)"),
      samples: [0],
    });
    const file = path.join(tmp, "surround.m4a");
    writeFileSync(file, "not audio");
    expect(loadAudio8k(file)).toMatchObject({ sourceRateHz: 44100, sourceChannels: 6 });
  });

  it("hands a WAV in an encoding it does not read (ADPCM) to ffmpeg", () => {
    fakeFfmpeg({ stderr: FFMPEG_MP3_STDERR, samples: [5, 6] });
    const file = path.join(tmp, "adpcm.wav");
    writeFileSync(file, buildWav({ formatTag: 0x11, channels: 1, rateHz: 8000, bits: 4, data: new Uint8Array(8) }));
    expect(Array.from(loadAudio8k(file).pcm)).toEqual([5, 6]);
  });

  it("says what ffmpeg said when it fails", () => {
    fakeFfmpeg({ stderr: "talk.ogg: Invalid data found when processing input\n", exitCode: 1 });
    const file = path.join(tmp, "talk.ogg");
    writeFileSync(file, "garbage");
    expect(() => loadAudio8k(file)).toThrow(
      `${file}: ffmpeg could not convert it: talk.ogg: Invalid data found when processing input`,
    );
  });

  it("without ffmpeg, names a non-WAV file and says to install ffmpeg or convert it to WAV", () => {
    withoutFfmpeg();
    const file = path.join(tmp, "song.flac");
    writeFileSync(file, "fLaC not really");
    expect(() => loadAudio8k(file)).toThrow(
      new RegExp(
        `^${file}: not a WAV file; only WAV is read natively.*ffmpeg.*is not on PATH: install ffmpeg or convert the file to WAV$`,
      ),
    );
  });

  it("without ffmpeg, says why an ADPCM WAV cannot be read and what to do", () => {
    withoutFfmpeg();
    const file = path.join(tmp, "adpcm.wav");
    writeFileSync(file, buildWav({ formatTag: 0x11, channels: 1, rateHz: 8000, bits: 4, data: new Uint8Array(8) }));
    expect(() => loadAudio8k(file)).toThrow(
      `${file}: IMA ADPCM (format 0x0011) WAV is not supported (PCM, IEEE float, mu-law and A-law are); ffmpeg would convert it but is not on PATH: install ffmpeg or convert the file to 16-bit PCM WAV`,
    );
  });

  it("does not hand a broken WAV to ffmpeg", () => {
    const ffmpeg = fakeFfmpeg({ stderr: "", samples: [1] });
    const file = path.join(tmp, "broken.wav");
    writeFileSync(file, buildWav(pcm16(new Uint8Array(0))).subarray(0, 36));
    expect(() => loadAudio8k(file)).toThrow(`${file}: WAV has no data chunk`);
    expect(() => ffmpeg.args()).toThrow(/ENOENT/); // never ran
  });
});

// ---------------------------------------------------------------------------------------------
// Real speech: the evaluation sets of ../shared/data, and the project's own prompts

/** A file of an evaluation set, or the test skips saying which set and how to get it. */
function needData(ctx: TestContext, set: EvaluationSetName, rel: string): string {
  const found = evaluationPath(set, rel);
  if ("skip" in found) return ctx.skip(found.skip);
  return found.path;
}

/** Frame energies of 8 kHz PCM16 in dBFS, 20 ms frames. */
function frameLevels(pcm: Int16Array): number[] {
  const levels: number[] = [];
  for (let i = 0; i + 160 <= pcm.length; i += 160) levels.push(dB(Math.max(rms(pcm, i, i + 160), 1e-9) / 32768));
  return levels.sort((a, b) => a - b);
}

/** Speech: loud frames well above the quiet ones (pauses), and most of the source's energy kept. */
function expectSpeech(audio: { pcm: Int16Array }, sourceRms: number): void {
  const levels = frameLevels(audio.pcm);
  const loud = levels[Math.floor(levels.length * 0.9)]!;
  const quiet = levels[Math.floor(levels.length * 0.1)]!;
  expect(loud).toBeGreaterThan(-35);
  expect(loud - quiet).toBeGreaterThan(15);
  const kept = rms(audio.pcm) / 32768 / sourceRms;
  expect(kept).toBeGreaterThan(0.8); // speech energy lies mostly below 4 kHz
  expect(kept).toBeLessThan(1.01);
}

function wavInfo(file: string): { rateHz: number; frames: number; rms: number } {
  const wav = readWav(new Uint8Array(readFileSync(file)), file);
  return { rateHz: wav.sampleRateHz, frames: wav.samples.length, rms: rms(wav.samples) };
}

describe("loadAudio8k on real speech", () => {
  it("reads the 8 kHz Asterisk prompt demo-thanks.wav unchanged", (ctx) => {
    const file = needData(ctx, "en/asterisk-8k", "demo-thanks.wav");
    const audio = loadAudio8k(file);
    const bytes = readFileSync(file);
    const raw = new Int16Array(bytes.buffer.slice(bytes.byteOffset + 44, bytes.byteOffset + bytes.length));
    expect(audio).toMatchObject({ sourceRateHz: 8000, sourceChannels: 1, durationMs: 5517.5 });
    expect(audio.pcm).toEqual(raw);
    expectSpeech(audio, wavInfo(file).rms);
  });

  it("reads the project's own prompts (8 kHz mu-law WAV) sample for sample", () => {
    for (const u of Object.values(PROJECT_SPEECH)) {
      const file = path.join(PROJECT_SPEECH_DIR, u.file);
      const audio = loadAudio8k(file);
      const bytes = new Uint8Array(readFileSync(file));
      expect(audio).toMatchObject({ sourceRateHz: 8000, sourceChannels: 1 });
      // mu-law has two zeros (0x7f, 0xff): compare the samples, not the bytes
      expect(audio.pcm).toEqual(decodeMulaw(bytes.subarray(bytes.length - audio.mulaw.length)));
      expect(audio.durationMs).toBeGreaterThan(2500);
      expect(audio.durationMs).toBeLessThan(5000);
      expectSpeech(audio, rms(audio.pcm) / 32768);
    }
  });

  it("reads the 16 kHz Hebrew utterance sas_01.wav at 8 kHz", (ctx) => {
    const file = needData(ctx, "he/saspeech", "sas_01.wav");
    const audio = loadAudio8k(file);
    expect(audio).toMatchObject({ sourceRateHz: 16000, sourceChannels: 1, durationMs: 3760 });
    expectSpeech(audio, wavInfo(file).rms);
  });

  it("reads the 16 kHz LibriVox utterances at 8 kHz", (ctx) => {
    const dir = needData(ctx, "en/librivox", "");
    const files = readdirSync(dir).filter((f) => f.endsWith(".wav"));
    expect(files.length).toBeGreaterThan(0);
    for (const name of files) {
      const file = path.join(dir, name);
      const source = wavInfo(file);
      const audio = loadAudio8k(file);
      expect(source.rateHz).toBe(16000);
      expect(audio.durationMs).toBe(Math.ceil(source.frames / 2) / 8);
      expectSpeech(audio, source.rms);
    }
  });

  it("without ffmpeg, names the Hebrew mp3 and says to install ffmpeg or convert it", (ctx) => {
    const file = needData(ctx, "he/long", "asimov.mp3");
    withoutFfmpeg();
    expect(() => loadAudio8k(file)).toThrow(`${file}: not a WAV file; only WAV is read natively`);
    expect(() => loadAudio8k(file)).toThrow(/install ffmpeg or convert the file to WAV$/);
  });
});
