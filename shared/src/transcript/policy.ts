/**
 * The transcript policy: what the agent hears of an engine's results, one instance per call.
 * Pure and engine-agnostic: the caller passes the time (`nowMs`, wall ms, its own clock) to
 * every method, calls `tick(nowMs)` at `nextDueMs()`, and sends the events each call returns.
 *
 * Partials (an agent should not be flooded, nor kept waiting):
 * - The engine's segments of one interim are merged into one text (`mergeFragments`).
 * - The first partial of an utterance goes out at once (leading edge). Later ones go out no
 *   more often than `cadenceMs` (default 180): a changed text arriving when the cadence has
 *   elapsed since the last partial goes out at once; otherwise it waits, and when the cadence
 *   elapses `tick` sends the newest waiting text (trailing edge) at exactly
 *   lastPartialWallMs + cadenceMs.
 * - A partial goes out only when its text differs from the last partial sent; a waiting text is
 *   dropped when the engine comes back to the text already sent.
 * - Short fragments are merged: when the new text only adds or only removes a trailing fragment
 *   (the old text is a prefix of the new one, or the new of the old) and that fragment has fewer
 *   than `minDeltaChars` non-space characters (default 2), it is never sent on arrival. It waits
 *   for the next cadence: lastPartialWallMs + cadenceMs when that is still ahead, else one full
 *   cadence from its arrival, so the engine can grow "ש" into "שלום" first. A larger change that
 *   arrives meanwhile is judged on its own. The first partial of an utterance is never held.
 * - Stable prefix (LocalAgreement-2): the longest whole-word prefix this interim shares with the
 *   previous interim, a word counting only when another word follows it in this interim (the
 *   last word may still be growing); or, when longer, the leading segments whose stability is
 *   >= `stableStability` (default 0.8). It never shrinks within an utterance: while the text
 *   still starts with the stable prefix of the last partial sent, that prefix is kept. When it does not, the engine revised trusted words: the partial says
 *   `revised: true`, `stats.stableRevisions` counts it, and the stable prefix starts over.
 *
 * Meaningful: once per utterance, next to the first partial whose text has >= `meaningfulChars`
 * non-space characters (default 10) or >= `meaningfulWords` words (default 3). An utterance that
 * gets its final before that has no `meaningful` (the final says more).
 *
 * Finals are polished (`polishFinal`), never held or dropped, close the utterance (the next
 * interim opens the next id) and drop any waiting partial of it. A final with no letter or digit
 * emits nothing but still closes the utterance.
 *
 * Audio times: partials and meaningful carry the interim's `audioEndMs`, and as `audioStartMs` the
 * latest start the engine gave in this utterance (absent when it gave none).
 *
 * `latencyMs` on partial, meaningful and final: nowMs at emission minus the `receivedAtMs` of the
 * engine result whose text is emitted (see `InterimInput.receivedAtMs`).
 */
import type {
  CallEndedEvent,
  CallStartedEvent,
  EngineProfile,
  EngineSwitchedEvent,
  FinalEvent,
  MeaningfulEvent,
  PartialEvent,
  UtteranceEvent,
} from "./events.js";
import { MAX_FINAL_ALTERNATIVES, callEndedEvent, utteranceIdOf } from "./events.js";
import { mergeFragments, polishFinal } from "./polish.js";

export interface PolicyOptions {
  /** Least time between two partials of one utterance, ms; 150..250, default 180. */
  readonly cadenceMs?: number;
  /**
   * A change that only adds or removes a trailing fragment of fewer than this many non-space
   * characters waits for the next cadence; an integer >= 0, default 2 (0 and 1 hold nothing).
   */
  readonly minDeltaChars?: number;
  /** Non-space characters that make a partial meaningful; an integer >= 1, default 10. */
  readonly meaningfulChars?: number;
  /** Words that make a partial meaningful; an integer >= 1, default 3 (the third word). */
  readonly meaningfulWords?: number;
  /** Engine stability (0..1) at or above which a leading segment counts as stable; default 0.8. */
  readonly stableStability?: number;
  /** BCP-47 language of the call, for the final polish and `call.started`; default `he-IL`. */
  readonly language?: string;
}

/** The defaults of `PolicyOptions`. */
export const POLICY_DEFAULTS = {
  cadenceMs: 180,
  minDeltaChars: 2,
  meaningfulChars: 10,
  meaningfulWords: 3,
  stableStability: 0.8,
  language: "he-IL",
} as const;

export interface TranscriptSegment {
  readonly text: string;
  /** The engine's stability estimate, 0..1 (Google's `stability`); absent counts as 0. */
  readonly stability?: number;
}

export interface InterimInput {
  /** The hypothesis as the engine split it; merged in order. */
  readonly segments: readonly TranscriptSegment[];
  /** Call audio time the utterance starts, ms, when the engine says. */
  readonly audioStartMs?: number;
  /** Call audio time the hypothesis reaches, ms. */
  readonly audioEndMs: number;
  /**
   * Wall time (the clock `nowMs` comes from) at which the call audio up to `audioEndMs` arrived
   * at the caller, ms: the anchor of `latencyMs`. Leave it out when unknown (then the events
   * have no `latencyMs`).
   */
  readonly receivedAtMs?: number;
}

export interface FinalInput {
  /** The engine's text, unpolished. */
  readonly text: string;
  /** 0..1; kept only when in that range. */
  readonly confidence?: number;
  readonly audioStartMs: number;
  readonly audioEndMs: number;
  /** As in `InterimInput.receivedAtMs`, for `audioEndMs`. */
  readonly receivedAtMs?: number;
  /** Name of the engine that produced it. */
  readonly engine: string;
  /** Other engines' texts for the same audio (the final pass), unpolished; polished like `text`. */
  readonly alternatives?: readonly { readonly engine: string; readonly text: string }[];
}

/** Counts over the call, for metrics (never text). */
export interface TranscriptPolicyStats {
  /** Interim results given to the policy. */
  interims: number;
  /** Partials emitted. */
  partials: number;
  meaningful: number;
  /** Finals emitted. */
  finals: number;
  /** Finals without text (closed their utterance, emitted nothing). */
  emptyFinals: number;
  /** Partials whose stable prefix the engine revised (`revised: true`). */
  stableRevisions: number;
}

interface Pending {
  readonly text: string;
  /** Stable prefix from agreement and stability, before the promise of earlier partials. */
  readonly stable: string;
  readonly audioStartMs: number | undefined;
  readonly audioEndMs: number;
  readonly receivedAtMs: number | undefined;
  /** When `tick` sends it, wall ms. */
  readonly dueMs: number;
}

/** State of the open utterance. */
interface Utterance {
  seq: number;
  /** Wall time of its last partial, ms; undefined before the first. */
  lastPartialMs: number | undefined;
  lastText: string;
  lastStable: string;
  /** Words of the previous interim (for agreement), sent or not. */
  previousWords: readonly string[];
  meaningfulSent: boolean;
  audioStartMs: number | undefined;
  pending: Pending | undefined;
}

function openUtterance(): Utterance {
  return {
    seq: 0,
    lastPartialMs: undefined,
    lastText: "",
    lastStable: "",
    previousWords: [],
    meaningfulSent: false,
    audioStartMs: undefined,
    pending: undefined,
  };
}

function integerOption(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new RangeError(`${name} is ${value}, expected an integer >= ${min}`);
  return value;
}

/** `prefix` is "" or a whole-word prefix of `text`. */
function startsWithWords(text: string, prefix: string): boolean {
  return prefix === "" || text === prefix || text.startsWith(`${prefix} `);
}

/** Non-space characters (code points) of `s`. */
function visibleLength(s: string): number {
  let n = 0;
  for (const c of s) if (c !== " ") n++;
  return n;
}

export class TranscriptPolicy {
  private readonly cadenceMs: number;
  private readonly minDeltaChars: number;
  private readonly meaningfulChars: number;
  private readonly meaningfulWords: number;
  private readonly stableStability: number;
  private readonly language: string;
  private utteranceNumber = 1;
  private u: Utterance = openUtterance();
  private started = false;
  private ended = false;
  private readonly counts: TranscriptPolicyStats = {
    interims: 0,
    partials: 0,
    meaningful: 0,
    finals: 0,
    emptyFinals: 0,
    stableRevisions: 0,
  };

  /** Throws RangeError naming the option when one is out of range. */
  constructor(
    private readonly callSid: string,
    options: PolicyOptions = {},
  ) {
    if (!callSid) throw new RangeError("callSid is empty, expected the call's CallSid");
    const o = { ...POLICY_DEFAULTS, ...options };
    if (!(o.cadenceMs >= 150 && o.cadenceMs <= 250)) {
      throw new RangeError(`cadenceMs is ${o.cadenceMs}, expected 150..250 (ms)`);
    }
    this.cadenceMs = o.cadenceMs;
    this.minDeltaChars = integerOption("minDeltaChars", o.minDeltaChars, 0);
    this.meaningfulChars = integerOption("meaningfulChars", o.meaningfulChars, 1);
    this.meaningfulWords = integerOption("meaningfulWords", o.meaningfulWords, 1);
    if (!(o.stableStability >= 0 && o.stableStability <= 1)) {
      throw new RangeError(`stableStability is ${o.stableStability}, expected 0..1`);
    }
    this.stableStability = o.stableStability;
    if (typeof o.language !== "string" || !o.language) {
      throw new RangeError(`language is ${JSON.stringify(o.language)}, expected a BCP-47 tag such as he-IL`);
    }
    this.language = o.language;
  }

  /** Id of the open utterance (the one the next partial or final belongs to). */
  get utteranceId(): string {
    return utteranceIdOf(this.callSid, this.utteranceNumber);
  }

  /** Counts so far (a copy). */
  get stats(): TranscriptPolicyStats {
    return { ...this.counts };
  }

  /** `call.started`, once, with the engine's profile when given; later calls return nothing. */
  start(engine: string, nowMs: number, profile?: EngineProfile): CallStartedEvent[] {
    if (this.started || this.ended) return [];
    this.started = true;
    const event = { v: 1 as const, type: "call.started" as const, callSid: this.callSid, wallMs: nowMs, engine };
    return [{ ...event, language: this.language, ...(profile ? { profile: { ...profile } } : {}) }];
  }

  /**
   * `call.ended`, once. A partial still waiting is dropped (it has no final, and the call is
   * over); afterwards every method returns nothing.
   */
  end(reason: string, nowMs: number): CallEndedEvent[] {
    if (this.ended) return [];
    this.ended = true;
    this.u.pending = undefined;
    return [callEndedEvent(this.callSid, reason, nowMs)];
  }

  /**
   * `engine.switched`. The open utterance stays open (the new engine's final closes it; partials
   * it saw keep their ids), but a waiting partial of the old engine is dropped and agreement
   * starts afresh: two engines' hypotheses do not confirm each other. `resumeFromMs`: call audio
   * from which the new engine transcribes, ms.
   */
  engineSwitched(
    from: string,
    to: string,
    reason: string,
    nowMs: number,
    resumeFromMs?: number,
  ): EngineSwitchedEvent[] {
    if (this.ended) return [];
    this.u.pending = undefined;
    this.u.previousWords = [];
    return [
      {
        v: 1,
        type: "engine.switched",
        callSid: this.callSid,
        wallMs: nowMs,
        from,
        to,
        reason,
        ...(resumeFromMs === undefined ? {} : { resumeFromMs }),
      },
    ];
  }

  /** An interim result: a partial now, or later via `tick`, or never (unchanged text). */
  onInterim(r: InterimInput, nowMs: number): UtteranceEvent[] {
    if (this.ended) return [];
    this.counts.interims++;
    const u = this.u;
    if (r.audioStartMs !== undefined) u.audioStartMs = r.audioStartMs;
    const text = mergeFragments(r.segments.map((s) => s.text));
    if (!text) return []; // nothing heard yet: not a change of what the agent was told
    const words = text.split(" ");
    const agreedStable = words.slice(0, agreedWords(u.previousWords, words)).join(" ");
    u.previousWords = words;
    const engineStable = this.engineStablePrefix(r.segments);
    const stable = engineStable.length > agreedStable.length ? engineStable : agreedStable;

    if (text === u.lastText) {
      u.pending = undefined;
      return [];
    }
    const candidate = {
      text,
      stable,
      audioStartMs: u.audioStartMs,
      audioEndMs: r.audioEndMs,
      receivedAtMs: r.receivedAtMs,
    };
    if (u.lastPartialMs === undefined) return this.emit({ ...candidate, dueMs: nowMs }, nowMs); // leading edge
    const nextSlotMs = u.lastPartialMs + this.cadenceMs;
    const short = this.isShortChange(u.lastText, text);
    if (!short && nowMs >= nextSlotMs) return this.emit({ ...candidate, dueMs: nowMs }, nowMs);
    // waits: a larger change for the next slot; a short one for the next slot still ahead, or a
    // whole cadence; a short one replacing a waiting text keeps that text's time (no starving)
    const dueMs = !short
      ? nextSlotMs
      : (u.pending?.dueMs ?? (nowMs >= nextSlotMs ? nowMs + this.cadenceMs : nextSlotMs));
    u.pending = { ...candidate, dueMs };
    return nowMs >= dueMs ? this.emit(u.pending, nowMs) : []; // the caller's tick was late
  }

  /** A final result: the polished final, at once. */
  onFinal(r: FinalInput, nowMs: number): UtteranceEvent[] {
    if (this.ended) return [];
    const utteranceId = this.utteranceId;
    this.utteranceNumber++;
    this.u = openUtterance();
    const text = polishFinal(r.text, { language: this.language });
    if (!text) {
      this.counts.emptyFinals++;
      return [];
    }
    this.counts.finals++;
    const confidence = r.confidence !== undefined && r.confidence >= 0 && r.confidence <= 1 ? r.confidence : undefined;
    const final: FinalEvent = {
      v: 1,
      type: "final",
      callSid: this.callSid,
      utteranceId,
      wallMs: nowMs,
      ...latency(nowMs, r.receivedAtMs),
      text,
      rawText: r.text,
      ...(confidence === undefined ? {} : { confidence }),
      stable: true,
      engine: r.engine,
      audioStartMs: r.audioStartMs,
      audioEndMs: r.audioEndMs,
      ...(r.alternatives?.length
        ? {
            alternatives: r.alternatives
              .slice(0, MAX_FINAL_ALTERNATIVES)
              .map((a) => ({ engine: a.engine, text: polishFinal(a.text, { language: this.language }) })),
          }
        : {}),
    };
    return [final];
  }

  /** The waiting partial when it is due (nowMs >= nextDueMs()), else nothing. */
  tick(nowMs: number): UtteranceEvent[] {
    const p = this.u.pending;
    return !this.ended && p && nowMs >= p.dueMs ? this.emit(p, nowMs) : [];
  }

  /** When the caller should call `tick` (wall ms), or undefined when nothing waits. */
  nextDueMs(): number | undefined {
    return this.ended ? undefined : this.u.pending?.dueMs;
  }

  /**
   * The leading segments at or above the stability threshold. A whole-word prefix of `text`:
   * `mergeFragments` puts a word boundary at every segment junction.
   */
  private engineStablePrefix(segments: readonly TranscriptSegment[]): string {
    let n = 0;
    while (n < segments.length && (segments[n]!.stability ?? 0) >= this.stableStability) n++;
    return n === 0 ? "" : mergeFragments(segments.slice(0, n).map((s) => s.text));
  }

  /** Only a trailing fragment of fewer than minDeltaChars non-space characters added or removed. */
  private isShortChange(before: string, after: string): boolean {
    const [shorter, longer] = before.length <= after.length ? [before, after] : [after, before];
    return longer.startsWith(shorter) && visibleLength(longer.slice(shorter.length)) < this.minDeltaChars;
  }

  private emit(p: Pending, nowMs: number): UtteranceEvent[] {
    const u = this.u;
    let stable = p.stable;
    const revised = !startsWithWords(p.text, u.lastStable);
    if (revised) this.counts.stableRevisions++;
    else if (u.lastStable.length > stable.length) stable = u.lastStable;
    u.pending = undefined;
    u.lastPartialMs = nowMs;
    u.lastText = p.text;
    u.lastStable = stable;
    const base = {
      v: 1 as const,
      callSid: this.callSid,
      utteranceId: this.utteranceId,
      wallMs: nowMs,
      ...latency(nowMs, p.receivedAtMs),
    };
    const audio = {
      ...(p.audioStartMs === undefined ? {} : { audioStartMs: p.audioStartMs }),
      audioEndMs: p.audioEndMs,
    };
    const seq = u.seq++;
    const partial: PartialEvent = {
      ...base,
      type: "partial",
      seq,
      text: p.text,
      stable,
      volatile: p.text.slice(stable.length).trimStart(),
      revised,
      ...audio,
    };
    this.counts.partials++;
    if (u.meaningfulSent || !this.isMeaningful(p.text)) return [partial];
    u.meaningfulSent = true;
    this.counts.meaningful++;
    const meaningful: MeaningfulEvent = { ...base, type: "meaningful", seq, text: p.text, ...audio };
    return [partial, meaningful];
  }

  private isMeaningful(text: string): boolean {
    return visibleLength(text) >= this.meaningfulChars || text.split(" ").length >= this.meaningfulWords;
  }
}

/** Words at the start of `current` that `previous` has too, each followed by another word in `current`. */
function agreedWords(previous: readonly string[], current: readonly string[]): number {
  let n = 0;
  while (n < previous.length && n < current.length - 1 && previous[n] === current[n]) n++;
  return n;
}

/** `latencyMs` when the arrival time is known and not after `nowMs`. */
function latency(nowMs: number, receivedAtMs: number | undefined): { latencyMs?: number } {
  return receivedAtMs === undefined || !(nowMs >= receivedAtMs) ? {} : { latencyMs: nowMs - receivedAtMs };
}
