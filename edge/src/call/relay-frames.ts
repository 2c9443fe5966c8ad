/**
 * Where the ingest decodes (adapter): each block is written straight into the relay audio frame
 * that will go to the runner as is (header + PCM16, `shared/src/relay/wire.ts`), frames come from
 * a small pool refilled as the runner acknowledges blocks, and sealed frames wait here until
 * the call sends them, so the time spent decoding is measured apart from the sends.
 */
import { audioHeaderBytes, writeAudioHeader } from "@ozen/shared";
import type { BlockSink } from "@ozen/shared";

const SAMPLE_RATE_HZ = 8000;
/** Frames kept for reuse; a block's frame is free once the runner acknowledged it. */
const POOL_MAX = 8;

export interface SealedBlock {
  readonly seq: number;
  readonly frame: ArrayBuffer;
  /** False for the short last block of a call. */
  readonly full: boolean;
  /** Date.now() when the block took its first audio. */
  readonly openedAtMs: number;
}

export class RelayFrameSink implements BlockSink {
  private readonly pool: ArrayBuffer[] = [];
  private current: ArrayBuffer | undefined;
  private currentOpenedAtMs = 0;
  private readonly sealed: SealedBlock[] = [];

  /** `callSid` names the call in every frame's header. */
  constructor(private readonly callSid: () => string) {}

  open(seq: number, startSample: number, capacity: number): Int16Array {
    const callSid = this.callSid();
    const bytes = audioHeaderBytes(callSid) + capacity * 2;
    const pooled = this.pool.pop();
    const frame = pooled && pooled.byteLength === bytes ? pooled : new ArrayBuffer(bytes);
    this.current = frame;
    this.currentOpenedAtMs = Date.now();
    return writeAudioHeader(frame, callSid, seq, startSample, SAMPLE_RATE_HZ, capacity);
  }

  seal(seq: number, startSample: number, samples: number): void {
    const callSid = this.callSid();
    let frame = this.current!;
    this.current = undefined;
    const headerBytes = audioHeaderBytes(callSid);
    const full = headerBytes + samples * 2 === frame.byteLength;
    if (!full) {
      // a short last block: rewrite the header for its real length
      const short = new ArrayBuffer(headerBytes + samples * 2);
      writeAudioHeader(short, callSid, seq, startSample, SAMPLE_RATE_HZ, samples).set(
        new Int16Array(frame, headerBytes, samples),
      );
      frame = short;
    }
    this.sealed.push({ seq, frame, full, openedAtMs: this.currentOpenedAtMs });
  }

  /** Hands every sealed block to `send`, oldest first. */
  drain(send: (block: SealedBlock) => void): void {
    for (const b of this.sealed) send(b);
    this.sealed.length = 0;
  }

  /** A frame the runner acknowledged, free for a later block. */
  recycle(frame: ArrayBuffer): void {
    if (this.pool.length < POOL_MAX) this.pool.push(frame);
  }
}
