import type {
  MediaFormat,
  ParseError,
  ParseErrorKind,
  ParseResult,
  TwilioInbound,
  TwilioOutbound,
} from "./messages.js";

/** Largest text message accepted from Twilio (a 20 ms media message is ~400 bytes). */
export const MAX_MESSAGE_BYTES = 64 * 1024;

class FieldError extends Error {
  constructor(
    readonly kind: ParseErrorKind,
    message: string,
  ) {
    super(message);
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(parent: Obj, key: string, path: string): Obj {
  const v = parent[key];
  if (v === undefined) throw new FieldError("missing_field", `${path}${key} is missing`);
  if (!isObj(v)) throw new FieldError("bad_field", `${path}${key} is not an object`);
  return v;
}

function str(parent: Obj, key: string, path: string): string {
  const v = parent[key];
  if (v === undefined) throw new FieldError("missing_field", `${path}${key} is missing`);
  if (typeof v !== "string") throw new FieldError("bad_field", `${path}${key} is ${typeof v}, expected a string`);
  return v;
}

/** A counter Twilio sends as a decimal string; a plain number is accepted too. */
function decimal(parent: Obj, key: string, path: string): number {
  const v = parent[key];
  if (v === undefined) throw new FieldError("missing_field", `${path}${key} is missing`);
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && v.length > 0 && v.length <= 15) {
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
      if (i === v.length - 1) return n;
    }
  }
  throw new FieldError("bad_field", `${path}${key} is ${JSON.stringify(v)?.slice(0, 40)}, expected a decimal string`);
}

function num(parent: Obj, key: string, path: string): number {
  const v = parent[key];
  if (v === undefined) throw new FieldError("missing_field", `${path}${key} is missing`);
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw new FieldError("bad_field", `${path}${key} is ${JSON.stringify(v)?.slice(0, 40)}, expected a number`);
  }
  return n;
}

function stringMap(v: unknown, path: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new FieldError("bad_field", `${path} is not an object`);
  const entries = Object.entries(v);
  for (const [k, val] of entries) {
    if (typeof val !== "string") throw new FieldError("bad_field", `${path}.${k} is not a string`);
  }
  // fromEntries, not assignment: a parameter named "__proto__" stays a parameter (found by fuzzing)
  return Object.fromEntries(entries) as Record<string, string>;
}

function stringList(v: unknown, path: string): string[] {
  if (v === undefined) return ["inbound"];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === "string")) {
    throw new FieldError("bad_field", `${path} is not a list of strings`);
  }
  return v;
}

function mediaFormat(start: Obj): MediaFormat {
  const f = obj(start, "mediaFormat", "start.");
  return {
    encoding: str(f, "encoding", "start.mediaFormat."),
    sampleRate: num(f, "sampleRate", "start.mediaFormat."),
    channels: num(f, "channels", "start.mediaFormat."),
  };
}

/** Builds the typed message from an already-parsed JSON value. */
export function parseTwilioValue(value: unknown): ParseResult {
  if (!isObj(value)) return fail("not_an_object", "message is not a JSON object");
  const event = value["event"];
  if (typeof event !== "string") return fail("missing_field", "event is missing or not a string");
  try {
    return { ok: true, message: build(event, value) };
  } catch (e) {
    if (e instanceof FieldError) return fail(e.kind, `${event}: ${e.message}`, event);
    throw e;
  }
}

function build(event: string, m: Obj): TwilioInbound {
  switch (event) {
    case "media": {
      const media = obj(m, "media", "");
      return {
        event,
        sequenceNumber: decimal(m, "sequenceNumber", ""),
        streamSid: str(m, "streamSid", ""),
        media: {
          // track is documented but absent in some old captures; inbound is the only one we get
          track: typeof media["track"] === "string" ? media["track"] : "inbound",
          chunk: decimal(media, "chunk", "media."),
          timestamp: decimal(media, "timestamp", "media."),
          payload: str(media, "payload", "media."),
        },
      };
    }
    case "start": {
      const start = obj(m, "start", "");
      const streamSid = str(start, "streamSid", "start.");
      return {
        event,
        sequenceNumber: decimal(m, "sequenceNumber", ""),
        streamSid: typeof m["streamSid"] === "string" ? m["streamSid"] : streamSid,
        start: {
          accountSid: str(start, "accountSid", "start."),
          streamSid,
          callSid: str(start, "callSid", "start."),
          tracks: stringList(start["tracks"], "start.tracks"),
          customParameters: stringMap(start["customParameters"], "start.customParameters"),
          mediaFormat: mediaFormat(start),
        },
      };
    }
    case "connected":
      return {
        event,
        protocol: typeof m["protocol"] === "string" ? m["protocol"] : "",
        version: typeof m["version"] === "string" ? m["version"] : "",
      };
    case "dtmf": {
      const dtmf = obj(m, "dtmf", "");
      return {
        event,
        sequenceNumber: decimal(m, "sequenceNumber", ""),
        streamSid: str(m, "streamSid", ""),
        dtmf: {
          track: typeof dtmf["track"] === "string" ? dtmf["track"] : "inbound_track",
          digit: str(dtmf, "digit", "dtmf."),
        },
      };
    }
    case "mark": {
      const mark = obj(m, "mark", "");
      return {
        event,
        sequenceNumber: decimal(m, "sequenceNumber", ""),
        streamSid: str(m, "streamSid", ""),
        mark: { name: str(mark, "name", "mark.") },
      };
    }
    case "stop": {
      const stop = isObj(m["stop"]) ? m["stop"] : {};
      return {
        event,
        sequenceNumber: decimal(m, "sequenceNumber", ""),
        streamSid: str(m, "streamSid", ""),
        stop: {
          accountSid: typeof stop["accountSid"] === "string" ? stop["accountSid"] : "",
          callSid: typeof stop["callSid"] === "string" ? stop["callSid"] : "",
        },
      };
    }
    default:
      throw new FieldError("unknown_event", `unknown event ${JSON.stringify(event.slice(0, 40))}`);
  }
}

function fail(kind: ParseErrorKind, message: string, event?: string): ParseError {
  return event === undefined ? { ok: false, kind, message } : { ok: false, kind, message, event };
}

/**
 * Parses one WebSocket text message from Twilio. Never throws: bad input is a `ParseError`
 * whose `kind` names the counter it belongs under.
 */
export function parseTwilioMessage(text: string): ParseResult {
  if (text.length > MAX_MESSAGE_BYTES) {
    return fail("too_large", `message is ${text.length} characters, the limit is ${MAX_MESSAGE_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail("malformed_json", `message is not JSON (${text.length} characters)`);
  }
  return parseTwilioValue(value);
}

const AS_STRINGS = new Set(["sequenceNumber", "chunk", "timestamp"]);

/**
 * Serializes an inbound message the way Twilio puts it on the wire (counters as decimal
 * strings): the simulator plays Twilio with the same types the edge parses.
 */
export function serializeInbound(message: TwilioInbound): string {
  return JSON.stringify(message, (k, v: unknown) => (AS_STRINGS.has(k) && typeof v === "number" ? String(v) : v));
}

/** Serializes a message to Twilio. */
export function serializeOutbound(message: TwilioOutbound): string {
  return JSON.stringify(message);
}

/** Outbound `media` for a bidirectional stream. */
export function outboundMedia(streamSid: string, payloadBase64: string): string {
  return JSON.stringify({ event: "media", streamSid, media: { payload: payloadBase64 } });
}

/** Outbound `mark`; Twilio echoes it when the audio before it has played (or was cleared). */
export function outboundMark(streamSid: string, name: string): string {
  return JSON.stringify({ event: "mark", streamSid, mark: { name } });
}

/** Outbound `clear`: Twilio drops buffered audio and echoes every pending mark (barge-in). */
export function outboundClear(streamSid: string): string {
  return JSON.stringify({ event: "clear", streamSid });
}
