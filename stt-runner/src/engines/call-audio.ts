/**
 * Call audio kept since a point (an engine's last final), in the blocks it came in, bounded: what
 * a replay to a restarted worker, a failover or a final pass needs. Blocks are copied on push
 * (the caller's buffer may be reused); slices are views of the copies.
 */

export interface AudioBlock {
  /** Call audio time of the first sample, in samples. */
  readonly startSample: number;
  readonly pcm: Int16Array;
}

export class CallAudio {
  private blocks: AudioBlock[] = [];
  private samples = 0;
  /** Samples dropped because the buffer outgrew its bound. */
  droppedSamples = 0;

  /** @param maxSamples most audio kept; the oldest blocks go first (always one block is kept). */
  constructor(private readonly maxSamples: number) {}

  /** Keeps a copy of `pcm` (starting at call sample `startSample`); returns the copy. */
  push(pcm: Int16Array, startSample: number): Int16Array {
    const copy = pcm.slice();
    this.blocks.push({ startSample, pcm: copy });
    this.samples += copy.length;
    while (this.samples > this.maxSamples && this.blocks.length > 1) {
      const b = this.blocks.shift()!;
      this.samples -= b.pcm.length;
      this.droppedSamples += b.pcm.length;
    }
    return copy;
  }

  /** Forgets blocks that end at or before `sample`. */
  dropBefore(sample: number): void {
    let n = 0;
    while (n < this.blocks.length && this.blocks[n]!.startSample + this.blocks[n]!.pcm.length <= sample) {
      this.samples -= this.blocks[n]!.pcm.length;
      n++;
    }
    if (n > 0) this.blocks.splice(0, n);
  }

  /** The kept audio in [from, to) call samples, in order (views, cut to the span). */
  slice(from: number, to = Infinity): AudioBlock[] {
    const out: AudioBlock[] = [];
    for (const b of this.blocks) {
      const end = b.startSample + b.pcm.length;
      if (end <= from || b.startSample >= to) continue;
      const a = Math.max(0, from - b.startSample);
      const z = Math.min(b.pcm.length, to - b.startSample);
      out.push({ startSample: b.startSample + a, pcm: a === 0 && z === b.pcm.length ? b.pcm : b.pcm.subarray(a, z) });
    }
    return out;
  }

  /** Call sample of the oldest audio kept, or undefined when empty. */
  get firstSample(): number | undefined {
    return this.blocks[0]?.startSample;
  }

  /** Samples kept. */
  get size(): number {
    return this.samples;
  }

  clear(): void {
    this.blocks = [];
    this.samples = 0;
  }
}
