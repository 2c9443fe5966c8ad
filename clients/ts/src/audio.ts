/**
 * The agent's audio as ozen takes it: PCM16 (signed 16-bit little-endian, mono) at 8000, 16000,
 * 24000 or 48000 Hz, or mu-law at 8000 Hz; a chunk carries at most 64 KiB (`docs/agent-control.md`).
 */
import { MAX_CHUNK_BYTES, WavReader, bytesPerSecond, formatProblem } from "@ozen/shared";
import type { AudioFormat } from "@ozen/shared";

export type { AudioFormat } from "@ozen/shared";
export { MAX_CHUNK_BYTES } from "@ozen/shared";

/** Throws a TypeError naming what is supported when `f` is not. */
export function checkFormat(f: AudioFormat): AudioFormat {
  const problem = formatProblem(f.encoding, f.sampleRateHz);
  if (problem) throw new TypeError(problem);
  return f;
}

/** A whole WAV file's format and audio bytes (mono PCM 16-bit or mu-law); throws naming the problem. */
export function readWav(bytes: Uint8Array): { format: AudioFormat; audio: Uint8Array } {
  const step = new WavReader().push(bytes);
  if (step.state === "error") throw new TypeError(step.message);
  if (step.state === "need_more") throw new TypeError("the WAV file ends before its data chunk");
  return { format: step.format, audio: step.audio };
}

/** True for the bytes of a RIFF/WAVE file. */
export function isWav(bytes: Uint8Array): boolean {
  return bytes.length >= 12 && String.fromCharCode(...bytes.subarray(0, 4)) === "RIFF";
}

/** Bytes per chunk of `chunkMs` in `f`: at most 64 KiB, whole samples for PCM16. */
export function chunkBytes(f: AudioFormat, chunkMs: number): number {
  let size = Math.max(1, Math.min(MAX_CHUNK_BYTES, Math.floor((bytesPerSecond(f) * chunkMs) / 1000)));
  if (f.encoding === "pcm16") size = Math.max(2, size - (size % 2));
  return size;
}

export { bytesPerSecond };
