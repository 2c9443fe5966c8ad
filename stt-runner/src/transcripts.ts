/**
 * Engine results -> transcript events -> the call's relay socket (adapter). Each event carries
 * the call and utterance ids, call audio times, the wall time it left the runner, and its
 * latency: that wall time minus the time the audio it reaches arrived at the runner.
 */
import { encodeControl } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import type { EngineFailure, EngineFinal, EngineInterim, EngineListener } from "./engines/engine.js";

/** When each block of call audio arrived (wall ms), to time results against. */
export class ArrivalClock {
  private readonly ends: number[] = [];
  private readonly times: number[] = [];

  constructor(private readonly max = 600) {}

  /** Audio up to `endMs` (call time) arrived at `wallMs`. */
  record(endMs: number, wallMs: number): void {
    this.ends.push(endMs);
    this.times.push(wallMs);
    if (this.ends.length > this.max) {
      this.ends.shift();
      this.times.shift();
    }
  }

  /** Wall time the audio reaching `audioMs` had arrived, or undefined when it is too old or not here yet. */
  arrivalOf(audioMs: number): number | undefined {
    for (let i = 0; i < this.ends.length; i++) if (this.ends[i]! >= audioMs) return this.times[i];
    return undefined;
  }
}

export interface TranscriptForwarderOptions {
  readonly start: RelayStart;
  readonly engine: string;
  readonly send: (text: string) => void;
  readonly clock: ArrivalClock;
  readonly now?: () => number;
}

/**
 * Sends `partial` for each changed interim and `final` for each final, numbered by utterance.
 * The debounced, meaning-gated policy (shared/transcript) is composed here when it lands.
 */
export class TranscriptForwarder implements EngineListener {
  private utterance = 1;
  private lastPartial = "";
  private readonly now: () => number;

  constructor(private readonly o: TranscriptForwarderOptions) {
    this.now = o.now ?? (() => Date.now());
    this.emit({ type: "call.started", engine: o.engine });
  }

  interim(r: EngineInterim): void {
    const text = r.segments
      .map((s) => s.text)
      .join("")
      .replace(/\s+/g, " ")
      .trim();
    if (!text || text === this.lastPartial) return;
    this.lastPartial = text;
    this.emit({
      type: "partial",
      utteranceId: this.utteranceId(),
      text,
      audioEndMs: r.audioEndMs,
      ...this.latency(r.audioEndMs),
    });
  }

  final(r: EngineFinal): void {
    const text = r.text.replace(/\s+/g, " ").trim();
    const utteranceId = this.utteranceId();
    this.utterance++;
    this.lastPartial = "";
    if (!text) return;
    this.emit({
      type: "final",
      utteranceId,
      text,
      rawText: r.text,
      ...(r.confidence !== undefined ? { confidence: r.confidence } : {}),
      audioStartMs: r.audioStartMs,
      audioEndMs: r.audioEndMs,
      engine: this.o.engine,
      ...this.latency(r.audioEndMs),
    });
  }

  failed(f: EngineFailure): void {
    this.emit({ type: "engine.failed", code: f.code, message: f.message, resumeFromMs: f.resumeFromMs });
  }

  close(): void {
    this.emit({ type: "call.ended" });
  }

  private utteranceId(): string {
    return `${this.o.start.callSid}:u${this.utterance}`;
  }

  private latency(audioMs: number): { latencyMs?: number } {
    const arrived = this.o.clock.arrivalOf(audioMs);
    return arrived === undefined ? {} : { latencyMs: Math.max(0, this.now() - arrived) };
  }

  private emit(event: Record<string, unknown>): void {
    this.o.send(
      encodeControl({ type: "event", event: { v: 1, callSid: this.o.start.callSid, wallMs: this.now(), ...event } }),
    );
  }
}
