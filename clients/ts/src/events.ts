/**
 * ozen's events as the client delivers them: the v1 schema's types (`@ozen/shared`, validated by
 * its parser) with the stream's number `n`, the control socket's own messages, and anything this
 * version does not know passed through as `UnknownEvent` (a newer edge never breaks the client).
 */
import { parseTranscriptEvent } from "@ozen/shared";
import type { TranscriptEvent } from "@ozen/shared";

export type {
  BargeInEvent,
  CallEndedEvent,
  CallStartedEvent,
  DtmfEvent,
  EngineSwitchedEvent,
  FinalEvent,
  MeaningfulEvent,
  PartialEvent,
  PlaybackClearedEvent,
  PlaybackFinishedEvent,
  PlaybackMarkEvent,
  PlaybackStartedEvent,
  SpeechEndedEvent,
  SpeechStartedEvent,
  TranscriptEvent,
} from "@ozen/shared";

/** A v1 event, with its number in the call's stream (absent in a webhook). */
export type OzenEvent = TranscriptEvent & { readonly n?: number };

/** An event this version does not know, or whose fields do not fit its type, kept raw. */
export interface UnknownEvent {
  readonly type: "unknown";
  /** The `type` it came with. */
  readonly eventType: string;
  readonly raw: unknown;
  /** Why it is not typed. */
  readonly problem: string;
  readonly n?: number;
}

/** Not a transcript event: this socket was granted control of the call, or lost it. */
export interface ControlState {
  readonly type: "control";
  readonly state: "granted" | "lost";
  readonly reason?: string;
}

/** What a call's stream yields. */
export type CallMessage = OzenEvent | UnknownEvent | ControlState;

/** A decoded JSON value -> its typed event, or an `UnknownEvent`. Never throws. */
export function parseEvent(value: unknown): OzenEvent | UnknownEvent {
  const o = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const n = typeof o["n"] === "number" && Number.isSafeInteger(o["n"]) ? o["n"] : undefined;
  const r = parseTranscriptEvent(value);
  if (r.ok) return n === undefined ? r.event : { ...r.event, n };
  return {
    type: "unknown",
    eventType: typeof o["type"] === "string" ? o["type"] : "",
    raw: value,
    problem: r.message,
    ...(n === undefined ? {} : { n }),
  };
}
