/**
 * Transcript events, version 1: what an agent receives about one call. A discriminated union on
 * `type`; every event carries `v: 1`, the call's `callSid` and `wallMs`, the time it was emitted.
 *
 * Times come in two kinds, never mixed:
 * - call audio ms (`audioStartMs`, `audioEndMs`, `resumeFromMs`): ms since the call's audio
 *   stream began, as the engine reports them;
 * - wall ms (`wallMs`, and the `receivedAtMs` the policy is given): the clock of whoever runs the
 *   policy (the runner), injected. `latencyMs` is a difference of two wall times.
 *
 * Utterance ids are strings `${callSid}:u${n}`, n = 1, 2, 3, ... in the order utterances close
 * in the call. A string (not a bare number) so an id means the same thing once events of many
 * calls are mixed in one log or table. Ids increase by one per closed utterance, including
 * utterances whose final was empty (so a consumer may see a gap in the ids it gets finals for).
 *
 * `parseTranscriptEvent` validates a value that crossed the relay; `encodeEvent` and
 * `decodeEvent` are the text form. Pure: no I/O, no clock.
 */

/** The schema version every event carries in `v`. */
export const TRANSCRIPT_EVENT_VERSION = 1;

/** Every `type` of a version 1 event. */
export const TRANSCRIPT_EVENT_TYPES = [
  "call.started",
  "partial",
  "meaningful",
  "final",
  "call.ended",
  "engine.switched",
  "speech.started",
  "speech.ended",
  "dtmf",
  "playback.started",
  "playback.finished",
  "playback.cleared",
  "playback.mark",
  "barge_in",
] as const;

export type TranscriptEventType = (typeof TRANSCRIPT_EVENT_TYPES)[number];

/** Largest event text `decodeEvent` accepts (a final of a long utterance is a few KB). */
export const MAX_EVENT_CHARS = 256 * 1024;

interface EventBase {
  readonly v: 1;
  /** Twilio's CallSid of the call. */
  readonly callSid: string;
  /** Wall time the event was emitted (the injected `nowMs`), ms. */
  readonly wallMs: number;
}

interface UtteranceEventBase extends EventBase {
  /** `${callSid}:u${n}`, see the module comment. */
  readonly utteranceId: string;
  /**
   * `wallMs` minus the wall time at which the audio up to this event's `audioEndMs` arrived
   * (the `receivedAtMs` the caller passed with the engine result that produced the text), ms.
   * It covers the engine's time and any time the policy held a partial for its cadence.
   * Absent when the caller did not know the arrival time, or gave one later than `wallMs`
   * (a clock mix-up is not reported as a latency).
   */
  readonly latencyMs?: number;
}

/** An interim hypothesis of the utterance, debounced. */
export interface PartialEvent extends UtteranceEventBase {
  readonly type: "partial";
  /** 0, 1, 2, ... within the utterance. */
  readonly seq: number;
  /** The whole hypothesis, whitespace normalised. */
  readonly text: string;
  /** Whole-word prefix of `text` the policy expects not to change (may be ""). */
  readonly stable: string;
  /** The rest of `text` after `stable`, without the joining space (`joinStable(stable, volatile) === text`). */
  readonly volatile: string;
  /**
   * True when `text` no longer starts with the `stable` of the previous partial of this
   * utterance: the engine revised words it had been trusted on, and `stable` starts over.
   */
  readonly revised: boolean;
  /** Call audio time the utterance starts, ms: the latest start the engine gave in it, if any. */
  readonly audioStartMs?: number;
  /** Call audio time the hypothesis reaches, ms. */
  readonly audioEndMs: number;
}

/**
 * Once per utterance, next to the first partial that reaches the policy's threshold (10
 * non-space characters or the third word by default): the moment for an agent to update its
 * intent, rather than on every partial.
 */
export interface MeaningfulEvent extends UtteranceEventBase {
  readonly type: "meaningful";
  /** `seq` of the partial it accompanies. */
  readonly seq: number;
  readonly text: string;
  readonly audioStartMs?: number;
  readonly audioEndMs: number;
}

/** The engine's final result for the utterance; closes it (no partial of it follows). */
export interface FinalEvent extends UtteranceEventBase {
  readonly type: "final";
  /** Polished (spacing, sentence end, see `polishFinal`). */
  readonly text: string;
  /** Exactly as the engine gave it. */
  readonly rawText: string;
  /** The engine's confidence, 0..1, when it gave one. */
  readonly confidence?: number;
  readonly stable: true;
  /** Name of the engine that produced it (`google-v1`, `whisper`, ...). */
  readonly engine: string;
  /** Call audio span of the utterance, ms. */
  readonly audioStartMs: number;
  readonly audioEndMs: number;
  /**
   * Other engines' texts for the same audio, polished like `text`: the whisper final pass over a
   * Google final (`[{ engine: "whisper", text }]`), or Google's text when the final pass won.
   * Absent when no other engine heard it (or it came after OZEN_FINAL_PASS_TIMEOUT_MS, docs/settings.md).
   */
  readonly alternatives?: readonly FinalAlternativeText[];
}

/** How an engine is set up for live partials (playbook B), as it reports itself. */
export interface EngineProfile {
  /** The engine's profile (`fast`, `accurate`; `null` for the null runner). */
  readonly name: string;
  /** Automatic punctuation while transcribing: off in the fast profile (finals are polished instead). */
  readonly punctuation: boolean;
}

/** Another engine's text for a final's audio. */
export interface FinalAlternativeText {
  readonly engine: string;
  readonly text: string;
}

/** Most alternatives a final carries. */
export const MAX_FINAL_ALTERNATIVES = 4;

export interface CallStartedEvent extends EventBase {
  readonly type: "call.started";
  /** The engine transcribing from the start. */
  readonly engine: string;
  /** BCP-47 language of the call (`he-IL`), when known. */
  readonly language?: string;
  /** The engine's profile, when it reports one (the GO check reads punctuation from it). */
  readonly profile?: EngineProfile;
}

export interface CallEndedEvent extends EventBase {
  readonly type: "call.ended";
  /** Why, for people and counters (`caller_hung_up`, `twilio_disconnected`, ...). */
  readonly reason: string;
}

/** The call moved to another engine mid-call (failover, or back). */
export interface EngineSwitchedEvent extends EventBase {
  readonly type: "engine.switched";
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  /** Call audio time from which the new engine transcribes, ms, when known. */
  readonly resumeFromMs?: number;
}

/**
 * The runner's voice activity detector heard the caller start speaking (every engine). `audioMs`
 * is the onset in call audio (not the later moment it was decided).
 */
export interface SpeechStartedEvent extends EventBase {
  readonly type: "speech.started";
  readonly audioMs: number;
}

/** The caller stopped speaking at `audioMs` (call audio); the speech began at `startAudioMs`. */
export interface SpeechEndedEvent extends EventBase {
  readonly type: "speech.ended";
  readonly audioMs: number;
  readonly startAudioMs: number;
}

/** The caller pressed a key; `audioMs` is the call audio time it came at. */
export interface DtmfEvent extends EventBase {
  readonly type: "dtmf";
  readonly digit: string;
  readonly audioMs: number;
}

/** Why an agent utterance was cut. */
export type PlaybackClearReason = "clear" | "barge_in" | "call_ended";

/**
 * Twilio began playing an agent utterance (the echo of the mark before its first frame).
 * `audioMs` is call audio time at the echo; `queuedMs` is its first chunk arriving at the edge ->
 * its first frame sent to Twilio.
 */
export interface PlaybackStartedEvent extends EventBase {
  readonly type: "playback.started";
  readonly playId: string;
  readonly audioMs: number;
  readonly queuedMs: number;
}

/** The caller heard the utterance's last frame; `durationMs` is its length. */
export interface PlaybackFinishedEvent extends EventBase {
  readonly type: "playback.finished";
  readonly playId: string;
  readonly audioMs: number;
  readonly durationMs: number;
}

/** The utterance was cut; the caller heard `heardMs` of it (estimated between mark echoes). */
export interface PlaybackClearedEvent extends EventBase {
  readonly type: "playback.cleared";
  readonly playId: string;
  readonly audioMs: number;
  readonly heardMs: number;
  readonly reason: PlaybackClearReason;
}

/** An agent mark's echo: the audio before it played, or (`cleared`) a clear emptied the line first. */
export interface PlaybackMarkEvent extends EventBase {
  readonly type: "playback.mark";
  readonly name: string;
  readonly audioMs: number;
  readonly cleared: boolean;
}

/**
 * The caller spoke over the agent and the edge cleared the agent's audio itself. `speechAudioMs`
 * is the caller's speech onset (call audio); `latencyMs` is that audio arriving at the edge ->
 * `clear` sent (absent when the arrival time is no longer known); `audioMs` is call audio time
 * when the clear was sent.
 */
export interface BargeInEvent extends EventBase {
  readonly type: "barge_in";
  readonly policy: "speech" | "meaningful";
  readonly playId: string;
  readonly speechAudioMs: number;
  readonly audioMs: number;
  readonly latencyMs?: number;
}

/** Events about one utterance. */
export type UtteranceEvent = PartialEvent | MeaningfulEvent | FinalEvent;
/** Events about the call as a whole. */
export type CallEvent = CallStartedEvent | CallEndedEvent | EngineSwitchedEvent;
/** The caller's voice activity (from the runner). */
export type SpeechEvent = SpeechStartedEvent | SpeechEndedEvent;
/** What the edge says about the agent's voice and the caller's keys (`docs/agent-control.md`). */
export type VoiceEvent =
  DtmfEvent | PlaybackStartedEvent | PlaybackFinishedEvent | PlaybackClearedEvent | PlaybackMarkEvent | BargeInEvent;
/** Every event an agent can receive, version 1. */
export type TranscriptEvent = UtteranceEvent | CallEvent | SpeechEvent | VoiceEvent;

/** The outcome of parsing: the typed event, or a message saying what is wrong (never transcript text). */
export type TranscriptEventParseResult = { ok: true; event: TranscriptEvent } | { ok: false; message: string };

/** The id of the `n`th utterance (1-based) of a call. */
export function utteranceIdOf(callSid: string, n: number): string {
  return `${callSid}:u${n}`;
}

/** True for the events that belong to an utterance. */
export function isUtteranceEvent(e: TranscriptEvent): e is UtteranceEvent {
  return e.type === "partial" || e.type === "meaningful" || e.type === "final";
}

/**
 * The call's `call.ended` event: the one place it is built, by the runner's transcript policy
 * and by the edge when the runner could not say it. `wallMs` is the emitter's clock, ms.
 */
export function callEndedEvent(callSid: string, reason: string, wallMs: number): CallEndedEvent {
  return { v: 1, type: "call.ended", callSid, wallMs, reason };
}

/** The text form of an event (JSON). */
export function encodeEvent(event: TranscriptEvent): string {
  return JSON.stringify(event);
}

/** Parses the text form of an event. Never throws. */
export function decodeEvent(text: string): TranscriptEventParseResult {
  if (text.length > MAX_EVENT_CHARS) {
    return { ok: false, message: `event is ${text.length} characters, the limit is ${MAX_EVENT_CHARS}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, message: `event is not JSON (${text.length} characters)` };
  }
  return parseTranscriptEvent(value);
}

/**
 * Validates a value that claims to be a transcript event (e.g. one that crossed the relay) and
 * returns the typed event, built afresh: fields this version does not know are dropped, so a
 * newer producer adding optional fields does not break an older consumer. Never throws.
 * Messages name the field and what was expected; string values are not echoed (they may be
 * transcript text, which stays out of logs).
 */
export function parseTranscriptEvent(value: unknown): TranscriptEventParseResult {
  if (!isObj(value)) return { ok: false, message: `event is ${describe(value)}, expected an object` };
  if (value["v"] !== TRANSCRIPT_EVENT_VERSION) {
    return {
      ok: false,
      message: `event version is ${describe(value["v"])}, this parser reads version ${TRANSCRIPT_EVENT_VERSION}`,
    };
  }
  const type = value["type"];
  if (typeof type !== "string") return { ok: false, message: `event type is ${describe(type)}, expected a string` };
  if (!(TRANSCRIPT_EVENT_TYPES as readonly string[]).includes(type)) {
    return {
      ok: false,
      message: `event type ${JSON.stringify(type.slice(0, 40))} is not one of ${TRANSCRIPT_EVENT_TYPES.join(", ")}`,
    };
  }
  try {
    return { ok: true, event: build(type as TranscriptEventType, new Reader(value, type)) };
  } catch (e) {
    if (e instanceof EventFieldError) return { ok: false, message: e.message };
    throw e;
  }
}

type Obj = Record<string, unknown>;

class EventFieldError extends Error {}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A value for an error message: numbers and booleans as they are, strings not (privacy). */
function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

/** Reads fields of one event, throwing `EventFieldError` with `${type}.${key}` in the message. */
class Reader {
  constructor(
    private readonly o: Obj,
    private readonly type: string,
  ) {}

  fail(message: string): never {
    throw new EventFieldError(`${this.type}.${message}`);
  }

  string(key: string, nonEmpty = false): string {
    const v = this.o[key];
    if (typeof v !== "string") this.fail(`${key} is ${describe(v)}, expected a string`);
    if (nonEmpty && v.length === 0) this.fail(`${key} is empty`);
    return v;
  }

  optString(key: string): string | undefined {
    return this.o[key] === undefined ? undefined : this.string(key);
  }

  /** A finite number >= min (an integer when asked). */
  number(key: string, min = 0, integer = false, max = Infinity): number {
    const v = this.o[key];
    const ok = typeof v === "number" && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v));
    if (!ok) {
      const what = integer ? "an integer" : "a number";
      const range = max === Infinity ? `>= ${min}` : `in ${min}..${max}`;
      this.fail(`${key} is ${describe(v)}, expected ${what} ${range}`);
    }
    return v as number;
  }

  optNumber(key: string, min = 0, max = Infinity): number | undefined {
    return this.o[key] === undefined ? undefined : this.number(key, min, false, max);
  }

  boolean(key: string): boolean {
    const v = this.o[key];
    if (typeof v !== "boolean") this.fail(`${key} is ${describe(v)}, expected a boolean`);
    return v;
  }

  /** One of `values` (a closed set of words, so echoing it is safe). */
  oneOf<const V extends readonly string[]>(key: string, values: V): V[number] {
    const v = this.o[key];
    if (typeof v !== "string" || !values.includes(v)) {
      this.fail(
        `${key} is ${typeof v === "string" ? JSON.stringify(v.slice(0, 20)) : describe(v)}, expected one of ${values.join(", ")}`,
      );
    }
    return v;
  }

  /** A DTMF key: 0-9, *, #, A-D. */
  digit(): string {
    const v = this.o["digit"];
    if (typeof v !== "string" || !/^[0-9*#A-D]$/.test(v))
      this.fail(`digit is ${describe(v)}, expected one of 0-9 * # A-D`);
    return v;
  }

  /** An `EngineProfile` object, or undefined when the field is absent. */
  optProfile(key: string): EngineProfile | undefined {
    const v = this.o[key];
    if (v === undefined) return undefined;
    if (!isObj(v)) this.fail(`${key} is ${describe(v)}, expected an object`);
    const inner = new Reader(v, `${this.type}.${key}`);
    return { name: inner.string("name", true), punctuation: inner.boolean("punctuation") };
  }

  /** Optional `alternatives`: up to MAX_FINAL_ALTERNATIVES `{ engine, text }` (unknown fields dropped). */
  alternatives(): FinalAlternativeText[] | undefined {
    const v = this.o["alternatives"];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length > MAX_FINAL_ALTERNATIVES) {
      this.fail(`alternatives is ${describe(v)}, expected an array of up to ${MAX_FINAL_ALTERNATIVES} objects`);
    }
    return v.map((a: unknown, i) => {
      if (!isObj(a)) this.fail(`alternatives[${i}] is ${describe(a)}, expected an object`);
      const item = new Reader(a, `${this.type}.alternatives[${i}]`);
      return { engine: item.string("engine", true), text: item.string("text") };
    });
  }

  /** `${callSid}:u${n}` with n a positive integer. */
  utteranceId(callSid: string): string {
    const id = this.string("utteranceId", true);
    const prefix = `${callSid}:u`;
    if (!id.startsWith(prefix) || !/^[1-9]\d*$/.test(id.slice(prefix.length))) {
      this.fail(`utteranceId ${JSON.stringify(id.slice(0, 80))} is not "${callSid}:u<n>" (n = 1, 2, ...)`);
    }
    return id;
  }

  /** `audioStartMs` (optional or required) and `audioEndMs`, in order. */
  audioSpan(startRequired: boolean): { audioStartMs?: number; audioEndMs: number } {
    const audioStartMs = startRequired ? this.number("audioStartMs") : this.optNumber("audioStartMs");
    const audioEndMs = this.number("audioEndMs");
    if (audioStartMs !== undefined && audioEndMs < audioStartMs) {
      this.fail(`audioEndMs (${audioEndMs}) is before audioStartMs (${audioStartMs})`);
    }
    return audioStartMs === undefined ? { audioEndMs } : { audioStartMs, audioEndMs };
  }
}

function build(type: TranscriptEventType, r: Reader): TranscriptEvent {
  const callSid = r.string("callSid", true);
  const base = { v: 1 as const, callSid, wallMs: r.number("wallMs") };
  const utterance = () => {
    const latencyMs = r.optNumber("latencyMs");
    return {
      ...base,
      utteranceId: r.utteranceId(callSid),
      ...(latencyMs === undefined ? {} : { latencyMs }),
    };
  };
  switch (type) {
    case "call.started": {
      const language = r.optString("language");
      const profile = r.optProfile("profile");
      return {
        ...base,
        type,
        engine: r.string("engine", true),
        ...(language === undefined ? {} : { language }),
        ...(profile === undefined ? {} : { profile }),
      };
    }
    case "call.ended":
      return { ...base, type, reason: r.string("reason") };
    case "engine.switched": {
      const resumeFromMs = r.optNumber("resumeFromMs");
      return {
        ...base,
        type,
        from: r.string("from", true),
        to: r.string("to", true),
        reason: r.string("reason"),
        ...(resumeFromMs === undefined ? {} : { resumeFromMs }),
      };
    }
    case "partial": {
      const u = utterance();
      const text = r.string("text");
      const stable = r.string("stable");
      const volatile = r.string("volatile");
      if (!text.startsWith(stable)) r.fail("stable is not a prefix of partial.text");
      if (joinStable(stable, volatile) !== text) r.fail("volatile is not the rest of partial.text after stable");
      return {
        ...u,
        type,
        seq: r.number("seq", 0, true),
        text,
        stable,
        volatile,
        revised: r.boolean("revised"),
        ...r.audioSpan(false),
      };
    }
    case "meaningful":
      return { ...utterance(), type, seq: r.number("seq", 0, true), text: r.string("text"), ...r.audioSpan(false) };
    case "speech.started":
      return { ...base, type, audioMs: r.number("audioMs") };
    case "speech.ended": {
      const startAudioMs = r.number("startAudioMs");
      const audioMs = r.number("audioMs");
      if (audioMs < startAudioMs) r.fail(`audioMs (${audioMs}) is before startAudioMs (${startAudioMs})`);
      return { ...base, type, audioMs, startAudioMs };
    }
    case "dtmf":
      return { ...base, type, digit: r.digit(), audioMs: r.number("audioMs") };
    case "playback.started":
      return {
        ...base,
        type,
        playId: r.string("playId", true),
        audioMs: r.number("audioMs"),
        queuedMs: r.number("queuedMs"),
      };
    case "playback.finished":
      return {
        ...base,
        type,
        playId: r.string("playId", true),
        audioMs: r.number("audioMs"),
        durationMs: r.number("durationMs"),
      };
    case "playback.cleared":
      return {
        ...base,
        type,
        playId: r.string("playId", true),
        audioMs: r.number("audioMs"),
        heardMs: r.number("heardMs"),
        reason: r.oneOf("reason", ["clear", "barge_in", "call_ended"] as const),
      };
    case "playback.mark":
      return {
        ...base,
        type,
        name: r.string("name", true),
        audioMs: r.number("audioMs"),
        cleared: r.boolean("cleared"),
      };
    case "barge_in": {
      const latencyMs = r.optNumber("latencyMs");
      return {
        ...base,
        type,
        policy: r.oneOf("policy", ["speech", "meaningful"] as const),
        playId: r.string("playId", true),
        speechAudioMs: r.number("speechAudioMs"),
        audioMs: r.number("audioMs"),
        ...(latencyMs === undefined ? {} : { latencyMs }),
      };
    }
    case "final": {
      const u = utterance();
      if (r.boolean("stable") !== true) r.fail("stable is false, expected true");
      const confidence = r.optNumber("confidence", 0, 1);
      const alternatives = r.alternatives();
      return {
        ...u,
        type,
        text: r.string("text"),
        rawText: r.string("rawText"),
        ...(confidence === undefined ? {} : { confidence }),
        stable: true,
        engine: r.string("engine", true),
        ...(r.audioSpan(true) as { audioStartMs: number; audioEndMs: number }),
        ...(alternatives === undefined ? {} : { alternatives }),
      };
    }
  }
}

/** `stable` and `volatile` back into the text they split: one space between them when both are non-empty. */
export function joinStable(stable: string, volatile: string): string {
  return stable && volatile ? `${stable} ${volatile}` : stable + volatile;
}
