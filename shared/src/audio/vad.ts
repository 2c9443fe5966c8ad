/**
 * SpeechActivityDetector: a small energy VAD with an adaptive noise floor and a hangover, over
 * 8 kHz PCM in 10 ms frames. It says when the caller starts and stops speaking, for every
 * engine, so barge-in and the agent need not wait for text. Pure: fed samples with their call
 * audio time; allocates nothing per frame.
 *
 * A frame is speech when its level is above both an absolute floor (`minDbfs`) and the noise
 * floor plus `marginDb`; the noise floor follows quiet frames down fast and up slowly (never
 * while speech is on). Speech starts after `onsetMs` of speech frames (one quiet frame between
 * them is forgiven), dated back to the first of them; it ends after `hangoverMs` without one,
 * dated at the end of the last. The defaults were chosen with `ozen bench vad` against Silero
 * on real telephone audio (docs/benchmarks.md, "Speech activity").
 */

export interface VadOptions {
  /** A frame quieter than this is never speech, dBFS. */
  readonly minDbfs: number;
  /** A frame must be this far above the noise floor to be speech, dB. */
  readonly marginDb: number;
  /** Speech frames needed to start, ms. */
  readonly onsetMs: number;
  /** Quiet needed to end, ms. */
  readonly hangoverMs: number;
}

export const DEFAULT_VAD_OPTIONS: VadOptions = { minDbfs: -42, marginDb: 12, onsetMs: 60, hangoverMs: 400 };

/** What the detector heard, in call audio ms. */
export type SpeechActivity =
  | { readonly kind: "started"; readonly audioMs: number; readonly detectedAtMs: number }
  | { readonly kind: "ended"; readonly audioMs: number; readonly startAudioMs: number; readonly detectedAtMs: number };

const SAMPLE_RATE_HZ = 8000;
const FRAME_MS = 10;
const FRAME_SAMPLES = (SAMPLE_RATE_HZ * FRAME_MS) / 1000;
/** Noise floor: per quiet frame, how far it moves down towards the level (fraction) and up (dB). */
const FLOOR_DOWN = 0.3;
const FLOOR_UP_DB = 0.03; // 3 dB/s
const FLOOR_START_DBFS = -70;

export class SpeechActivityDetector {
  private readonly o: VadOptions;
  private floorDb = FLOOR_START_DBFS;
  /** Samples of the frame being filled, and their energy so far. */
  private frameFill = 0;
  private frameEnergy = 0;
  /** Call audio time of the next sample, ms*8 (samples). */
  private nextSample = -1;
  private speaking = false;
  /** Run of speech frames (while not speaking): its first frame's start sample, its length. */
  private runStart = -1;
  private runFrames = 0;
  private gapFrames = 0;
  /** While speaking: the start, and the end of the last speech frame (samples). */
  private startSample = 0;
  private lastSpeechEnd = 0;

  constructor(o: Partial<VadOptions> = {}) {
    this.o = { ...DEFAULT_VAD_OPTIONS, ...o };
  }

  get isSpeaking(): boolean {
    return this.speaking;
  }

  /**
   * Samples at call audio sample `startSample` (8 kHz). Returns what started or ended in them
   * (usually nothing; `onActivity` gets each one as it is decided).
   */
  feed(pcm: Int16Array, startSample: number, onActivity: (a: SpeechActivity) => void): void {
    if (this.nextSample >= 0 && startSample !== this.nextSample) {
      // a jump in call audio (a replay or a gap): start the frame over
      this.frameFill = 0;
      this.frameEnergy = 0;
    }
    this.nextSample = startSample;
    for (let i = 0; i < pcm.length; i++) {
      const s = pcm[i]!;
      this.frameEnergy += s * s;
      this.nextSample++;
      if (++this.frameFill === FRAME_SAMPLES) {
        this.frame(this.frameEnergy / FRAME_SAMPLES, this.nextSample, onActivity);
        this.frameFill = 0;
        this.frameEnergy = 0;
      }
    }
  }

  /** The stream ended: speech still on ends at the last speech frame. */
  finish(onActivity: (a: SpeechActivity) => void): void {
    if (!this.speaking) return;
    this.speaking = false;
    onActivity({
      kind: "ended",
      audioMs: this.lastSpeechEnd / 8,
      startAudioMs: this.startSample / 8,
      detectedAtMs: this.nextSample / 8,
    });
  }

  private frame(meanSquare: number, endSample: number, onActivity: (a: SpeechActivity) => void): void {
    const db = meanSquare > 0 ? 10 * Math.log10(meanSquare / (32768 * 32768)) : -120;
    const speech = db > this.o.minDbfs && db > this.floorDb + this.o.marginDb;
    if (!speech && !this.speaking) {
      this.floorDb = db < this.floorDb ? this.floorDb + (db - this.floorDb) * FLOOR_DOWN : this.floorDb + FLOOR_UP_DB;
    }
    const startSample = endSample - FRAME_SAMPLES;
    if (this.speaking) {
      if (speech) this.lastSpeechEnd = endSample;
      else if (endSample - this.lastSpeechEnd >= this.o.hangoverMs * 8) {
        this.speaking = false;
        this.runFrames = 0;
        onActivity({
          kind: "ended",
          audioMs: this.lastSpeechEnd / 8,
          startAudioMs: this.startSample / 8,
          detectedAtMs: endSample / 8,
        });
      }
      return;
    }
    if (speech) {
      if (this.runFrames === 0) this.runStart = startSample;
      this.runFrames++;
      this.gapFrames = 0;
      if (this.runFrames * FRAME_MS >= this.o.onsetMs) {
        this.speaking = true;
        this.startSample = this.runStart;
        this.lastSpeechEnd = endSample;
        onActivity({ kind: "started", audioMs: this.runStart / 8, detectedAtMs: endSample / 8 });
      }
    } else if (this.runFrames > 0 && ++this.gapFrames > 1) {
      this.runFrames = 0;
      this.gapFrames = 0;
    }
  }
}
