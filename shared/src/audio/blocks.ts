import { MULAW_DECODE_TABLE } from "./mulaw.js";

/** Where assembled blocks go. The sink owns the memory: the assembler decodes straight into it. */
export interface BlockSink {
  /** A PCM target with room for `capacity` samples, for block `seq` starting at `startSample`. */
  open(seq: number, startSample: number, capacity: number): Int16Array;
  /** Block `seq` holds `samples` samples (fewer than capacity only on `flush`). */
  seal(seq: number, startSample: number, samples: number): void;
}

/**
 * Turns a stream of mu-law bytes of any frame size into fixed PCM16 blocks (e.g. 100 ms = 800
 * samples at 8 kHz), decoding by table into the sink's buffer. Pure: no clock, no I/O.
 */
export class BlockAssembler {
  private pcm: Int16Array | undefined;
  private filled = 0;
  private blockStart = 0;
  /** The seq the next opened block gets. */
  nextSeq = 0;
  /** Samples taken in so far (the audio clock, in samples). */
  samplesIn = 0;

  constructor(
    readonly blockSamples: number,
    private readonly sink: BlockSink,
  ) {
    if (!Number.isInteger(blockSamples) || blockSamples <= 0) throw new RangeError(`block of ${blockSamples} samples`);
  }

  /** Decodes `length` mu-law bytes from `src` into blocks. */
  pushMulaw(src: Uint8Array, length = src.length): void {
    const t = MULAW_DECODE_TABLE;
    let i = 0;
    while (i < length) {
      const pcm = this.pcm ?? this.openBlock();
      const take = Math.min(length - i, this.blockSamples - this.filled);
      const base = this.filled - i;
      for (const end = i + take; i < end; i++) pcm[base + i] = t[src[i]!]!;
      this.filled += take;
      this.samplesIn += take;
      if (this.filled === this.blockSamples) this.sealBlock();
    }
  }

  /** Adds `samples` of digital silence (concealing a frame that could not be decoded). */
  pushSilence(samples: number): void {
    let left = samples;
    while (left > 0) {
      const pcm = this.pcm ?? this.openBlock();
      const take = Math.min(left, this.blockSamples - this.filled);
      pcm.fill(0, this.filled, this.filled + take);
      this.filled += take;
      this.samplesIn += take;
      left -= take;
      if (this.filled === this.blockSamples) this.sealBlock();
    }
  }

  /** Samples waiting in the open block. */
  get pending(): number {
    return this.filled;
  }

  /** Seals a partly filled block (end of call). Does nothing when the open block is empty. */
  flush(): void {
    if (this.pcm && this.filled > 0) this.sealBlock();
  }

  private openBlock(): Int16Array {
    this.blockStart = this.samplesIn;
    this.pcm = this.sink.open(this.nextSeq, this.blockStart, this.blockSamples);
    this.filled = 0;
    return this.pcm;
  }

  private sealBlock(): void {
    const seq = this.nextSeq++;
    const samples = this.filled;
    this.pcm = undefined;
    this.filled = 0;
    this.sink.seal(seq, this.blockStart, samples);
  }
}
