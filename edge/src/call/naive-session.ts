/**
 * The benchmark's baseline, in the same Worker: the naive handler most Twilio bridges start
 * with. Each 20 ms frame is decoded into fresh buffers and relayed on its own as it arrives
 * (50 relay messages a second instead of 10). Routed only when BENCH_NAIVE=on.
 *
 * A CallSession in every other way: it composes one, replacing only what becomes of a media frame.
 */
import { decodeMulaw, encodeAudioFrame } from "@ozen/shared";
import type { MediaMessage } from "@ozen/shared";
import { CallSession } from "./call-session.js";
import type { FrameOut } from "./call-session.js";
import type { Env } from "../env.js";

export class NaiveCallSession implements DurableObject {
  private readonly session: CallSession;
  private seq = 0;
  private samples = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    this.session = new CallSession(ctx, env, { perFrame: (m, out) => this.relayFrame(m, out) });
  }

  fetch(request: Request): Promise<Response> {
    return this.session.fetch(request);
  }

  alarm(): Promise<void> {
    return this.session.alarm();
  }

  // the call's Twilio socket reaches its object through these (CallSession accepts it so)
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    this.session.webSocketMessage(ws, message);
  }

  webSocketClose(ws: WebSocket, code: number): void {
    this.session.webSocketClose(ws, code);
  }

  webSocketError(ws: WebSocket): void {
    this.session.webSocketError(ws);
  }

  private relayFrame(m: MediaMessage, out: FrameOut): void {
    const bin = atob(m.media.payload);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const pcm = decodeMulaw(bytes);
    const frame = encodeAudioFrame({
      callId: out.callSid(),
      seq: this.seq,
      startSample: this.samples,
      sampleRateHz: 8000,
      pcm,
    });
    out.relay(this.seq++, frame);
    this.samples += pcm.length;
  }
}
