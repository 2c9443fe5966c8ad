/**
 * The benchmark's baseline, in the same Worker: the naive handler most Twilio bridges start
 * with. Each 20 ms frame is decoded into fresh buffers and relayed on its own as it arrives
 * (50 relay messages a second instead of 10). Routed only when BENCH_NAIVE=on.
 */
import { decodeMulaw, encodeAudioFrame, outboundMark } from "@ozen/shared";
import type { MediaMessage } from "@ozen/shared";
import { CallSession } from "./call-session.js";

export class NaiveCallSession extends CallSession {
  private seq = 0;
  private samples = 0;

  protected override onMedia(m: MediaMessage): void {
    if (!this.relay) return;
    this.stats.framesIn++;
    const bin = atob(m.media.payload);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const pcm = decodeMulaw(bytes);
    const frame = encodeAudioFrame({
      callId: this.stats.callSid,
      seq: this.seq,
      startSample: this.samples,
      sampleRateHz: 8000,
      pcm,
    });
    this.relay.send(this.seq++, frame);
    this.samples += pcm.length;
    this.stats.blocksMade++;
    if (this.config.ingestAck === "block")
      this.sendToTwilio(outboundMark(this.streamSid, `ozen-ack:${m.sequenceNumber}`));
  }
}
