/** Where speech starts in a recording: the reference point for "first partial after speech onset". */

const FRAME_SAMPLES = 160; // one 20 ms Twilio frame at 8 kHz
/** Speech is at least this loud (telephone speech sits around -30..-15 dBFS). */
const SPEECH_FLOOR_DBFS = -40;
/** ... and this far above the recording's noise floor (its 10th-percentile frame). */
const ABOVE_NOISE_DB = 20;

/** The level of `pcm[from..to)` in dB below full scale. */
export function levelDbfs(pcm: Int16Array, from = 0, to = pcm.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += pcm[i]! * pcm[i]!;
  return 10 * Math.log10(sum / Math.max(1, to - from) / (32768 * 32768) + 1e-12);
}

/**
 * The index of the first 20 ms frame of 8 kHz PCM that holds speech: the first frame louder than
 * -40 dBFS and 20 dB above the recording's noise floor. Undefined when no frame is.
 */
export function speechOnsetFrame(pcm: Int16Array): number | undefined {
  const frames = Math.floor(pcm.length / FRAME_SAMPLES);
  const levels = Array.from({ length: frames }, (_, f) => levelDbfs(pcm, f * FRAME_SAMPLES, (f + 1) * FRAME_SAMPLES));
  if (frames === 0) return undefined;
  const noise = [...levels].sort((a, b) => a - b)[Math.floor(frames * 0.1)]!;
  const threshold = Math.max(SPEECH_FLOOR_DBFS, noise + ABOVE_NOISE_DB);
  const i = levels.findIndex((db) => db >= threshold);
  return i < 0 ? undefined : i;
}
