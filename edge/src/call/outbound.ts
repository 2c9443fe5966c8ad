/**
 * What the call sends Twilio (adapter): the greeting on `start`, marks and their echoes, `clear`
 * for barge-in, and the benchmarks' per-block `ozen-ack` marks. Sends go through the call's
 * socket; a socket that is closing is the caller's to notice, never an exception here.
 */
import { outboundClear, outboundMark, outboundMedia } from "@ozen/shared";
import type { StreamMode } from "@ozen/shared";
import { greetingChunks } from "./greeting.js";

/** The outbound side's part of the call's stats (`stats.ts`). */
export interface OutboundCounters {
  /** `start` -> greeting sent, ms; null when no greeting played. */
  readonly greetingMs: number | null;
  readonly greetingFrames: number;
  readonly marksSent: number;
  readonly marksEchoed: number;
  readonly clears: number;
}

export interface OutboundOptions {
  readonly streamMode: StreamMode;
  readonly greeting: "asset" | "agent" | "none";
  /** Sends one text message on the Twilio socket (swallows a socket that is closing). */
  readonly send: (text: string) => void;
}

export class TwilioOutbound {
  /** The stream the messages name; set on `start`. */
  streamSid = "";
  private readonly pendingMarks = new Set<string>();
  private greetingMs: number | null = null;
  private greetingFrames = 0;
  private marksSent = 0;
  private marksEchoed = 0;
  private clears = 0;

  constructor(private readonly o: OutboundOptions) {}

  /** Twilio plays audio back only on a bidirectional (`<Connect>`) stream. */
  get canPlay(): boolean {
    return this.o.streamMode === "connect";
  }

  /** Plays the greeting (prepared chunks, nothing from the network), then a mark for its end. */
  playGreeting(startedAtMs: number): void {
    if (this.o.greeting !== "asset" || !this.canPlay) return;
    const chunks = greetingChunks();
    for (const chunk of chunks) this.o.send(outboundMedia(this.streamSid, chunk));
    this.sendMark("greeting");
    this.greetingMs = Date.now() - startedAtMs;
    this.greetingFrames = chunks.length;
  }

  /** Twilio echoed a mark: the audio before it played (or was cleared). */
  onMarkEcho(name: string): void {
    if (this.pendingMarks.delete(name)) this.marksEchoed++;
  }

  /** Barge-in: Twilio drops the agent's queued audio and echoes every pending mark. False when it cannot. */
  clear(): boolean {
    if (!this.canPlay) return false;
    this.o.send(outboundClear(this.streamSid));
    this.clears++;
    return true;
  }

  /** The marks still waiting for their echo. */
  get pendingMarkCount(): number {
    return this.pendingMarks.size;
  }

  /** `ozen-ack:{sequenceNumber}` for a block relayed (INGEST_ACK=block): benchmarks time frames by it. */
  ackBlock(mediaSequence: number): void {
    this.o.send(outboundMark(this.streamSid, `ozen-ack:${mediaSequence}`));
  }

  counters(): OutboundCounters {
    return {
      greetingMs: this.greetingMs,
      greetingFrames: this.greetingFrames,
      marksSent: this.marksSent,
      marksEchoed: this.marksEchoed,
      clears: this.clears,
    };
  }

  private sendMark(name: string): void {
    this.pendingMarks.add(name);
    this.marksSent++;
    this.o.send(outboundMark(this.streamSid, name));
  }
}
