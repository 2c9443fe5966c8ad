/**
 * Engine results -> transcript events -> the call's relay socket (adapter). Each event carries
 * the call and utterance ids, call audio times, the wall time it left the runner, and its
 * latency: that wall time minus the time the audio it reaches arrived at the runner.
 */
import { TranscriptPolicy, encodeControl } from "@ozen/shared";
import type {
  EngineProfile,
  PolicyOptions,
  RelayStart,
  SpeechActivity,
  TranscriptEvent,
  UndeliveredKind,
} from "@ozen/shared";
import type { EngineFailure, EngineFinal, EngineInterim, EngineListener, EngineSwitch } from "./engines/engine.js";

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
  /** The engine's profile, for `call.started`. */
  readonly profile?: EngineProfile;
  /**
   * The language the engine transcribes this call in (BCP-47), for `call.started` and the
   * polish of finals (`call-language.ts`); default: the call's `ozen_language`, else Hebrew.
   */
  readonly language?: string;
  /** A relay text frame to the call's edge; `kind` tells partials and finals apart (see `EventSend`). */
  readonly send: (text: string, kind?: UndeliveredKind) => void;
  readonly clock: ArrivalClock;
  readonly now?: () => number;
  readonly policy?: PolicyOptions;
  /** Sees every event sent (the runner's metrics). */
  readonly observe?: (e: TranscriptEvent) => void;
}

/**
 * Composes the transcript policy (shared/transcript: cadence, stable prefix, meaningful, polished
 * finals) onto an engine's results and sends each event over the call's relay socket. The
 * policy is pure; this adapter owns its clock and the timer for the cadence's trailing edge.
 */
export class TranscriptForwarder implements EngineListener {
  private readonly policy: TranscriptPolicy;
  private readonly now: () => number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** The engine transcribing the call now (changes at `switched`). */
  private engine: string;

  constructor(private readonly o: TranscriptForwarderOptions) {
    this.now = o.now ?? (() => Date.now());
    this.engine = o.engine;
    this.policy = new TranscriptPolicy(o.start.callSid, {
      ...o.policy,
      language: o.language ?? o.policy?.language ?? o.start.customParameters["ozen_language"] ?? "he",
    });
    this.send(this.policy.start(o.engine, this.now(), o.profile));
  }

  interim(r: EngineInterim): void {
    const receivedAtMs = this.o.clock.arrivalOf(r.audioEndMs);
    this.send(this.policy.onInterim({ ...r, ...(receivedAtMs !== undefined ? { receivedAtMs } : {}) }, this.now()));
    this.schedule();
  }

  final(r: EngineFinal): void {
    const receivedAtMs = this.o.clock.arrivalOf(r.audioEndMs);
    this.send(
      this.policy.onFinal(
        { ...r, engine: r.engine ?? this.engine, ...(receivedAtMs !== undefined ? { receivedAtMs } : {}) },
        this.now(),
      ),
    );
    this.schedule();
  }

  failed(f: EngineFailure): void {
    // no fallback left (or none configured): the call goes on without transcripts from here
    this.send(this.policy.engineSwitched(this.engine, "none", `${f.code}: ${f.message}`, this.now(), f.resumeFromMs));
    this.engine = "none";
  }

  switched(s: EngineSwitch): void {
    this.send(this.policy.engineSwitched(s.from, s.to, s.reason, this.now(), s.resumeFromMs));
    this.engine = s.to;
    this.schedule();
  }

  /** Voice activity (the speech activity wrapper): `speech.started` / `speech.ended` with call audio times. */
  speech(a: SpeechActivity): void {
    if (this.closed) return;
    const { callSid } = this.o.start;
    const wallMs = this.now();
    this.send([
      a.kind === "started"
        ? { v: 1, type: "speech.started", callSid, wallMs, audioMs: a.audioMs }
        : { v: 1, type: "speech.ended", callSid, wallMs, audioMs: a.audioMs, startAudioMs: a.startAudioMs },
    ]);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.closed) return;
    this.closed = true;
    this.send(this.policy.end("call ended", this.now()));
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const due = this.policy.nextDueMs();
    if (due === undefined || this.closed) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.send(this.policy.tick(this.now()));
        this.schedule();
      },
      Math.max(0, due - this.now()),
    );
  }

  private send(events: readonly TranscriptEvent[]): void {
    for (const e of events) {
      const kind = e.type === "final" ? "final" : e.type === "partial" || e.type === "meaningful" ? "partial" : "other";
      this.o.send(encodeControl({ type: "event", event: e }), kind);
      this.o.observe?.(e);
    }
  }
}
