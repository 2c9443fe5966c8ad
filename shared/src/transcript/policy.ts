/**
 * The transcript policy: what the agent hears of an engine's results. Pure and engine-agnostic;
 * the caller passes the time (`nowMs`, wall ms) and calls `tick` at `nextDueMs()`.
 *
 * - Partials go out on a cadence (default 180 ms): the first of an utterance at once, later
 *   ones no more often than the cadence (the newest pending text goes out when it elapses), and
 *   only when the text changed.
 * - The engine's segments of one result are merged into one text.
 * - Each partial carries its stable prefix (words two consecutive hypotheses agree on, or
 *   leading segments the engine marks stable) and its volatile tail.
 * - `meaningful` fires once per utterance when a partial first reaches the agent's threshold
 *   (10 letters or the third word): update intent then, not on every partial.
 * - Finals are polished, end the utterance (no partial of it follows) and are never held back.
 */
import { polishFinal } from "./polish.js";

export interface PolicyOptions {
  /** 150..250 ms */
  readonly cadenceMs?: number;
  readonly meaningfulChars?: number;
  readonly meaningfulWords?: number;
  /** Segments at or above this stability count as stable. */
  readonly stableStability?: number;
  readonly language?: string;
}

interface Base {
  readonly v: 1;
  readonly callSid: string;
  readonly utteranceId: string;
  /** When the event left the policy, wall ms. */
  readonly wallMs: number;
  /** wallMs minus when the audio it reaches arrived (absent when unknown), ms. */
  readonly latencyMs?: number;
}

export interface PartialEvent extends Base {
  readonly type: "partial";
  readonly seq: number;
  readonly text: string;
  readonly stable: string;
  readonly volatile: string;
  readonly audioEndMs: number;
}
export interface MeaningfulEvent extends Base {
  readonly type: "meaningful";
  readonly text: string;
  readonly audioEndMs: number;
}
export interface FinalEvent extends Base {
  readonly type: "final";
  readonly text: string;
  readonly rawText: string;
  readonly stable: true;
  readonly confidence?: number;
  readonly audioStartMs: number;
  readonly audioEndMs: number;
  readonly engine: string;
}
export type UtteranceEvent = PartialEvent | MeaningfulEvent | FinalEvent;

/** Call-level events (no utterance): the call's start and end, and a change of engine mid-call. */
interface CallBase {
  readonly v: 1;
  readonly callSid: string;
  readonly wallMs: number;
}
export interface CallStartedEvent extends CallBase {
  readonly type: "call.started";
  readonly engine: string;
}
export interface CallEndedEvent extends CallBase {
  readonly type: "call.ended";
}
export interface EngineSwitchedEvent extends CallBase {
  readonly type: "engine.switched";
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  /** Call audio from which the new engine transcribes, ms. */
  readonly fromAudioMs: number;
}

/** Every event the agent can receive, version 1. */
export type TranscriptEvent = UtteranceEvent | CallStartedEvent | CallEndedEvent | EngineSwitchedEvent;

export interface InterimInput {
  readonly segments: readonly { readonly text: string; readonly stability?: number }[];
  readonly audioEndMs: number;
  /** When the audio up to audioEndMs arrived, wall ms. */
  readonly receivedAtMs?: number;
}

export interface FinalInput {
  readonly text: string;
  readonly confidence?: number;
  readonly audioStartMs: number;
  readonly audioEndMs: number;
  readonly receivedAtMs?: number;
  readonly engine: string;
}

interface Pending {
  text: string;
  stable: string;
  audioEndMs: number;
  receivedAtMs?: number;
}

function words(s: string): string[] {
  return s.split(" ").filter(Boolean);
}

export class TranscriptPolicy {
  private readonly cadenceMs: number;
  private readonly meaningfulChars: number;
  private readonly meaningfulWords: number;
  private readonly stableStability: number;
  private readonly language: string;
  private utterance = 1;
  private seq = 0;
  private lastEmitMs = -Infinity;
  private lastText = "";
  private lastInterim = "";
  private stable = "";
  private meaningfulSent = false;
  private pending: Pending | undefined;

  constructor(
    private readonly callSid: string,
    o: PolicyOptions = {},
  ) {
    this.cadenceMs = o.cadenceMs ?? 180;
    if (!(this.cadenceMs >= 150 && this.cadenceMs <= 250))
      throw new RangeError(`cadenceMs is ${this.cadenceMs}, expected 150..250`);
    this.meaningfulChars = o.meaningfulChars ?? 10;
    this.meaningfulWords = o.meaningfulWords ?? 3;
    this.stableStability = o.stableStability ?? 0.8;
    this.language = o.language ?? "he";
  }

  get utteranceId(): string {
    return `${this.callSid}:u${this.utterance}`;
  }

  onInterim(r: InterimInput, nowMs: number): UtteranceEvent[] {
    const text = r.segments
      .map((s) => s.text)
      .join("")
      .replace(/\s+/g, " ")
      .trim();
    if (!text) return [];
    // stable: the words this hypothesis shares with the previous one (LocalAgreement-2) ...
    const prev = words(this.lastInterim);
    const cur = words(text);
    let n = 0;
    while (n < prev.length && n < cur.length - 1 && prev[n] === cur[n]) n++;
    let stable = cur.slice(0, n).join(" ");
    // ... or the leading segments the engine itself calls stable
    let engineStable = "";
    for (const s of r.segments) {
      if ((s.stability ?? 0) < this.stableStability) break;
      engineStable += s.text;
    }
    engineStable = engineStable.replace(/\s+/g, " ").trim();
    if (engineStable.length > stable.length && text.startsWith(engineStable)) stable = engineStable;
    // never shrink what was promised stable unless the engine changed those words
    if (this.stable && text.startsWith(this.stable) && this.stable.length > stable.length) stable = this.stable;
    this.lastInterim = text;
    if (text === this.lastText) {
      this.pending = undefined;
      return [];
    }
    this.pending = {
      text,
      stable,
      audioEndMs: r.audioEndMs,
      ...(r.receivedAtMs !== undefined ? { receivedAtMs: r.receivedAtMs } : {}),
    };
    return nowMs - this.lastEmitMs >= this.cadenceMs ? this.emitPending(nowMs) : [];
  }

  /** When `tick` has a partial to send, or undefined. */
  nextDueMs(): number | undefined {
    return this.pending ? Math.max(this.lastEmitMs + this.cadenceMs, 0) : undefined;
  }

  tick(nowMs: number): UtteranceEvent[] {
    const due = this.nextDueMs();
    return due !== undefined && nowMs >= due ? this.emitPending(nowMs) : [];
  }

  onFinal(r: FinalInput, nowMs: number): UtteranceEvent[] {
    const utteranceId = this.utteranceId;
    this.utterance++;
    this.seq = 0;
    this.lastEmitMs = -Infinity;
    this.lastText = "";
    this.lastInterim = "";
    this.stable = "";
    this.meaningfulSent = false;
    this.pending = undefined;
    const text = polishFinal(r.text, this.language);
    if (!text) return [];
    return [
      {
        v: 1,
        type: "final",
        callSid: this.callSid,
        utteranceId,
        wallMs: nowMs,
        ...latency(nowMs, r.receivedAtMs),
        text,
        rawText: r.text,
        stable: true,
        ...(r.confidence !== undefined ? { confidence: r.confidence } : {}),
        audioStartMs: r.audioStartMs,
        audioEndMs: r.audioEndMs,
        engine: r.engine,
      },
    ];
  }

  private emitPending(nowMs: number): UtteranceEvent[] {
    const p = this.pending;
    if (!p) return [];
    this.pending = undefined;
    this.lastEmitMs = nowMs;
    this.lastText = p.text;
    this.stable = p.stable;
    const base = {
      v: 1 as const,
      callSid: this.callSid,
      utteranceId: this.utteranceId,
      wallMs: nowMs,
      ...latency(nowMs, p.receivedAtMs),
    };
    const volatile = p.text.slice(p.stable.length).trim();
    const out: UtteranceEvent[] = [
      { ...base, type: "partial", seq: this.seq++, text: p.text, stable: p.stable, volatile, audioEndMs: p.audioEndMs },
    ];
    if (!this.meaningfulSent && this.isMeaningful(p.text)) {
      this.meaningfulSent = true;
      out.push({ ...base, type: "meaningful", text: p.text, audioEndMs: p.audioEndMs });
    }
    return out;
  }

  private isMeaningful(text: string): boolean {
    return text.replace(/\s/g, "").length >= this.meaningfulChars || words(text).length >= this.meaningfulWords;
  }
}

function latency(nowMs: number, receivedAtMs: number | undefined): { latencyMs?: number } {
  return receivedAtMs === undefined ? {} : { latencyMs: Math.max(0, nowMs - receivedAtMs) };
}
