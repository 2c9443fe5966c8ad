/**
 * Twilio Media Streams messages, both directions, as typed values.
 *
 * Inbound (Twilio -> us): `connected`, `start`, `media`, `dtmf`, `mark`, `stop`.
 * Outbound (us -> Twilio, bidirectional streams only): `media`, `mark`, `clear`.
 * Numbers Twilio sends as strings (`sequenceNumber`, `chunk`, `timestamp`) are parsed to numbers;
 * unknown fields are ignored; key order never matters.
 */

export interface ConnectedMessage {
  readonly event: "connected";
  readonly protocol: string;
  readonly version: string;
}

export interface MediaFormat {
  readonly encoding: string;
  readonly sampleRate: number;
  readonly channels: number;
}

export interface StartMessage {
  readonly event: "start";
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly start: {
    readonly accountSid: string;
    readonly streamSid: string;
    readonly callSid: string;
    readonly tracks: readonly string[];
    readonly customParameters: Readonly<Record<string, string>>;
    readonly mediaFormat: MediaFormat;
  };
}

export interface MediaMessage {
  readonly event: "media";
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly media: {
    readonly track: string;
    readonly chunk: number;
    /** Presentation time in ms from the start of the stream (the first one is not 0). */
    readonly timestamp: number;
    /** base64 of raw mu-law 8 kHz bytes, left encoded: the consumer decodes into its own buffer. */
    readonly payload: string;
  };
}

export interface DtmfMessage {
  readonly event: "dtmf";
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly dtmf: { readonly track: string; readonly digit: string };
}

export interface MarkMessage {
  readonly event: "mark";
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly mark: { readonly name: string };
}

export interface StopMessage {
  readonly event: "stop";
  readonly sequenceNumber: number;
  readonly streamSid: string;
  readonly stop: { readonly accountSid: string; readonly callSid: string };
}

export type TwilioInbound = ConnectedMessage | StartMessage | MediaMessage | DtmfMessage | MarkMessage | StopMessage;

export type TwilioInboundEvent = TwilioInbound["event"];

/** Why a message could not be used; `kind` is the counter it goes under. */
export type ParseErrorKind =
  "malformed_json" | "not_an_object" | "unknown_event" | "missing_field" | "bad_field" | "too_large";

export interface ParseError {
  readonly ok: false;
  readonly kind: ParseErrorKind;
  /** A message a person can act on, e.g. `media.chunk is "x", expected a decimal string`. */
  readonly message: string;
  /** The event name when one could be read (for counting per event). */
  readonly event?: string;
}

export type ParseResult = { readonly ok: true; readonly message: TwilioInbound } | ParseError;

// ---- outbound ----

export interface OutboundMedia {
  readonly event: "media";
  readonly streamSid: string;
  readonly media: { readonly payload: string };
}
export interface OutboundMark {
  readonly event: "mark";
  readonly streamSid: string;
  readonly mark: { readonly name: string };
}
export interface OutboundClear {
  readonly event: "clear";
  readonly streamSid: string;
}
export type TwilioOutbound = OutboundMedia | OutboundMark | OutboundClear;
