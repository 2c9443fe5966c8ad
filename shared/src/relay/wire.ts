/**
 * The relay wire format: one persistent WebSocket per call between the edge (CallSession) and
 * the stt-runner. Audio travels as binary frames, everything else as typed JSON text frames.
 * Both carry version 1; a peer that sees another version answers with an `error` and closes.
 *
 * Binary audio frame, little-endian:
 *
 *   offset size  field
 *   0      1     version (1)
 *   1      1     kind (1 = audio)
 *   2      1     callId length in bytes, L (1..64, ASCII)
 *   3      1     flags (0; reserved)
 *   4      4     seq: block number within the call, from 0, +1 per block
 *   8      4     startSample: audio time of the first sample, in samples since the stream began
 *   12     2     sampleRateHz (8000)
 *   14     2     header length H = 16 + L rounded up to even (PCM stays 2-byte aligned)
 *   16     L     callId
 *   H      ...   PCM16 samples, mono
 */

import { checkPhrases } from "./phrases.js";
import { parseTranscriptEvent } from "../transcript/events.js";
import type { TranscriptEvent } from "../transcript/events.js";

export const RELAY_VERSION = 1;
export const AUDIO_KIND = 1;
export const MAX_CALL_ID_BYTES = 64;
const FIXED_HEADER = 16;

export interface AudioFrame {
  readonly callId: string;
  readonly seq: number;
  readonly startSample: number;
  readonly sampleRateHz: number;
  /** A view into the frame's bytes (no copy). */
  readonly pcm: Int16Array;
}

export function audioHeaderBytes(callId: string): number {
  return (FIXED_HEADER + callId.length + 1) & ~1;
}

/**
 * Writes the header of an audio frame into `buf` and returns a PCM view after it, so the
 * caller decodes straight into the frame it will send (no copy). `buf` must hold
 * `audioHeaderBytes(callId) + 2 * samples` bytes.
 */
export function writeAudioHeader(
  buf: ArrayBuffer,
  callId: string,
  seq: number,
  startSample: number,
  sampleRateHz: number,
  samples: number,
): Int16Array {
  if (callId.length === 0 || callId.length > MAX_CALL_ID_BYTES) {
    throw new RangeError(`call id is ${callId.length} characters, expected 1..${MAX_CALL_ID_BYTES}`);
  }
  const h = audioHeaderBytes(callId);
  const v = new DataView(buf);
  v.setUint8(0, RELAY_VERSION);
  v.setUint8(1, AUDIO_KIND);
  v.setUint8(2, callId.length);
  v.setUint8(3, 0);
  v.setUint32(4, seq >>> 0, true);
  v.setUint32(8, startSample >>> 0, true);
  v.setUint16(12, sampleRateHz, true);
  v.setUint16(14, h, true);
  for (let i = 0; i < callId.length; i++) {
    const c = callId.charCodeAt(i);
    if (c > 0x7e || c < 0x21) throw new RangeError(`call id has a non-ASCII or blank character at ${i}`);
    v.setUint8(FIXED_HEADER + i, c);
  }
  if (h > FIXED_HEADER + callId.length) v.setUint8(h - 1, 0);
  return new Int16Array(buf, h, samples);
}

/** Builds a whole audio frame (copying `pcm`); for tools and tests. */
export function encodeAudioFrame(frame: Omit<AudioFrame, "pcm"> & { pcm: Int16Array }): ArrayBuffer {
  const buf = new ArrayBuffer(audioHeaderBytes(frame.callId) + frame.pcm.length * 2);
  writeAudioHeader(buf, frame.callId, frame.seq, frame.startSample, frame.sampleRateHz, frame.pcm.length).set(
    frame.pcm,
  );
  return buf;
}

export type DecodeAudioResult = { ok: true; frame: AudioFrame } | { ok: false; message: string };

/** Reads an audio frame; the PCM is a view into `data` when aligned, else a copy. */
export function decodeAudioFrame(data: ArrayBuffer | Uint8Array): DecodeAudioResult {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < FIXED_HEADER)
    return { ok: false, message: `audio frame is ${bytes.length} bytes, shorter than its header` };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = v.getUint8(0);
  if (version !== RELAY_VERSION)
    return { ok: false, message: `audio frame version ${version}, this peer speaks ${RELAY_VERSION}` };
  if (v.getUint8(1) !== AUDIO_KIND)
    return { ok: false, message: `binary frame kind ${v.getUint8(1)} is not audio (1)` };
  const idLen = v.getUint8(2);
  const h = v.getUint16(14, true);
  if (idLen === 0 || idLen > MAX_CALL_ID_BYTES || h !== ((FIXED_HEADER + idLen + 1) & ~1) || h > bytes.length) {
    return { ok: false, message: `audio frame header is inconsistent (call id ${idLen} bytes, header ${h} bytes)` };
  }
  if ((bytes.length - h) % 2 !== 0) return { ok: false, message: `audio frame has an odd number of PCM bytes` };
  let callId = "";
  for (let i = 0; i < idLen; i++) callId += String.fromCharCode(bytes[FIXED_HEADER + i]!);
  const samples = (bytes.length - h) / 2;
  const offset = bytes.byteOffset + h;
  let pcm: Int16Array;
  if (offset % 2 === 0) {
    pcm = new Int16Array(bytes.buffer, offset, samples);
  } else {
    // unaligned (a Node Buffer from a pool): copy; Buffer#slice would be a view of the whole pool
    const aligned = new Uint8Array(samples * 2);
    aligned.set(bytes.subarray(h));
    pcm = new Int16Array(aligned.buffer);
  }
  return {
    ok: true,
    frame: {
      callId,
      seq: v.getUint32(4, true),
      startSample: v.getUint32(8, true),
      sampleRateHz: v.getUint16(12, true),
      pcm,
    },
  };
}

// ---- JSON control and results ----

/** Edge -> runner: a call begins, or resumes on a new socket (`resumeFromSeq` set). */
export interface RelayStart {
  readonly v: 1;
  readonly type: "start";
  readonly callSid: string;
  readonly streamSid: string;
  readonly accountSid: string;
  readonly sampleRateHz: number;
  readonly encoding: "pcm16le";
  readonly blockMs: number;
  readonly tracks: readonly string[];
  /** The call's `<Parameter>`s minus the edge's own token (`ozen_phrases` stays; `phrases` has them checked). */
  readonly customParameters: Readonly<Record<string, string>>;
  /**
   * The call's phrase hints (`relay/phrases.ts`): the edge's configured ones for its account and
   * number, and its own `ozen_phrases`, checked. Absent from an edge that sends none.
   */
  readonly phrases?: readonly string[];
  /** First block seq that follows on this socket: 0 for a new call, the oldest unacked on resume. */
  readonly resumeFromSeq: number;
}

/** Edge -> runner: the caller hung up (or vanished); no audio follows `lastSeq`. */
export interface RelayStop {
  readonly v: 1;
  readonly type: "stop";
  readonly reason: string;
  readonly lastSeq: number;
}

/** Either way: a liveness probe; the other side answers `pong` with the same id. */
export interface RelayPing {
  readonly v: 1;
  readonly type: "ping";
  readonly id: number;
}
export interface RelayPong {
  readonly v: 1;
  readonly type: "pong";
  readonly id: number;
}

/**
 * Runner -> edge: every block up to and including `seq` has arrived (the round trip is timed on
 * it), and every block up to `committedSeq` is done with: its words are in finals, or the engine
 * keeps nothing of it. The edge keeps blocks until committed and replays them on reconnect, so a
 * runner that goes away mid-utterance loses nothing. Absent `committedSeq` means `seq`.
 */
export interface RelayAck {
  readonly v: 1;
  readonly type: "ack";
  readonly seq: number;
  readonly committedSeq?: number;
}

/** Runner -> edge: stop the agent's audio now (barge-in): the edge sends Twilio `clear`. */
export interface RelayClear {
  readonly v: 1;
  readonly type: "clear";
}

/** Runner -> edge: this instance is going away; reconnect (the platform routes to a live one). */
export interface RelayGoAway {
  readonly v: 1;
  readonly type: "goaway";
  readonly reason: string;
}

/**
 * Runner -> edge: a transcript event for the agent (`partial`, `meaningful`, `final`, ...; the
 * schema is in shared/src/transcript). `parseRunnerToEdge` validates it (`parseTranscriptEvent`):
 * past the parse it is typed, and a bad one is a parse error marked `invalidEvent`.
 */
export interface RelayEvent {
  readonly v: 1;
  readonly type: "event";
  readonly event: TranscriptEvent;
}

/**
 * Either way: the peer could not use something; `code` is stable, `message` for people.
 * `lost` comes with code `events_lost` (runner -> edge, first on a socket that starts a call the
 * runner gave up on): the transcript events it produced for the call that no edge received.
 */
export interface RelayError {
  readonly v: 1;
  readonly type: "error";
  readonly code: string;
  readonly message: string;
  readonly lost?: RelayEventsLost;
}

/** Events the runner produced for a call and could not deliver (its edge never came back in time). */
export interface RelayEventsLost {
  /** Transcript events of every type. */
  readonly events: number;
  /** Of those, finals. */
  readonly finals: number;
}

/**
 * Close codes of the relay socket beyond the standard ones (1000 done, 1012 goaway on drain).
 * The runner sends an `error` with the same `code` first. All are the runner refusing something
 * on a socket it had accepted (a credential that does not open it is refused before that, with
 * HTTP 401 on the upgrade; a new socket while the runner drains with HTTP 503 and `Retry-After`).
 */
export const RELAY_CLOSE = {
  /** `start.callSid` is not the call the socket's credential was signed for. */
  call_mismatch: { code: 4001, reason: "start is for another call than the credential's" },
  /** A second `start` on a socket: one socket carries one call. */
  second_start: { code: 4002, reason: "one call per socket" },
  /** A block's seq is further ahead of the next expected seq than the relay buffer allows. */
  seq_out_of_window: { code: 4003, reason: "block seq out of window" },
  /** The call's edge came back on a newer socket: this one is done. */
  replaced: { code: 4004, reason: "replaced by a newer socket" },
  /** The call's audio came faster than real time beyond the relay buffer's worth. */
  too_fast: { code: 4005, reason: "audio faster than real time" },
  /** `start` names a block size or sample rate the runner does not take. */
  bad_start: { code: 4006, reason: "bad start" },
  /**
   * `start` of a call the runner does not hold while it holds `OZEN_MAX_CALLS` calls already: the
   * edge redials through the front end with backoff, keeping the call's audio for replay.
   */
  at_capacity: { code: 4007, reason: "runner is at capacity" },
} as const;

export type RelayCloseCode = keyof typeof RELAY_CLOSE;

export type EdgeToRunner = RelayStart | RelayStop | RelayPing | RelayPong | RelayError;
export type RunnerToEdge = RelayAck | RelayClear | RelayGoAway | RelayEvent | RelayPing | RelayPong | RelayError;
export type RelayControl = EdgeToRunner | RunnerToEdge;

/**
 * A parsed control message, or what is wrong with it. `invalidEvent`: an `event` message whose
 * transcript event failed `parseTranscriptEvent` (the edge counts those apart).
 */
export type RelayParseResult<T> = { ok: true; message: T } | { ok: false; message: string; invalidEvent?: true };

type Obj = Record<string, unknown>;

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Each kind of field: its check, and what a rejection says when a field is not one. */
const FIELDS = {
  string: [isString, "missing or not a string"],
  number: [isNumber, "missing or not a number"],
  object: [(v) => typeof v === "object" && v !== null, "missing or not an object"],
  strings: [(v) => Array.isArray(v) && v.every(isString), "missing or not a list of strings"],
  stringMap: [
    (v) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every(isString),
    "missing or not an object of strings",
  ],
  pcm16le: [(v) => v === "pcm16le", 'missing or not "pcm16le"'],
  optionalNumber: [(v) => v === undefined || isNumber(v), "not a number"],
} satisfies Record<string, readonly [(v: unknown) => boolean, string]>;

type FieldType = keyof typeof FIELDS;

const SHAPES: Record<string, ReadonlyArray<readonly [string, FieldType]>> = {
  start: [
    ["callSid", "string"],
    ["streamSid", "string"],
    ["accountSid", "string"],
    ["sampleRateHz", "number"],
    ["encoding", "pcm16le"],
    ["blockMs", "number"],
    ["tracks", "strings"],
    ["customParameters", "stringMap"],
    ["resumeFromSeq", "number"],
  ],
  stop: [
    ["reason", "string"],
    ["lastSeq", "number"],
  ],
  ping: [["id", "number"]],
  pong: [["id", "number"]],
  ack: [
    ["seq", "number"],
    ["committedSeq", "optionalNumber"],
  ],
  clear: [],
  goaway: [["reason", "string"]],
  event: [["event", "object"]],
  error: [
    ["code", "string"],
    ["message", "string"],
  ],
};

const EDGE_TO_RUNNER = new Set(["start", "stop", "ping", "pong", "error"]);
const RUNNER_TO_EDGE = new Set(["ack", "clear", "goaway", "event", "ping", "pong", "error"]);

function parseControl(text: string, allowed: ReadonlySet<string>): RelayParseResult<RelayControl> {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { ok: false, message: "relay message is not JSON" };
  }
  if (typeof m !== "object" || m === null || Array.isArray(m))
    return { ok: false, message: "relay message is not an object" };
  const o = m as Obj;
  if (o["v"] !== RELAY_VERSION)
    return { ok: false, message: `relay version ${JSON.stringify(o["v"])}, this peer speaks ${RELAY_VERSION}` };
  const type = o["type"];
  if (typeof type !== "string" || !allowed.has(type)) {
    return { ok: false, message: `relay message type ${JSON.stringify(type)} is not expected here` };
  }
  for (const [key, t] of SHAPES[type]!) {
    const [ok, says] = FIELDS[t];
    if (!ok(o[key])) return { ok: false, message: `relay ${type}.${key} is ${says}` };
  }
  if (type === "error" && o["lost"] !== undefined) {
    const lost = o["lost"] as Obj | null;
    if (typeof lost !== "object" || lost === null || !isNumber(lost["events"]) || !isNumber(lost["finals"]))
      return { ok: false, message: "relay error.lost is not { events, finals }" };
  }
  if (type === "start" && o["phrases"] !== undefined) {
    const r = checkPhrases(o["phrases"], "relay start.phrases");
    if (!r.ok) return { ok: false, message: r.message };
  }
  if (type === "event") {
    const r = parseTranscriptEvent(o["event"]);
    if (!r.ok) return { ok: false, message: `relay event: ${r.message}`, invalidEvent: true };
    return { ok: true, message: { v: RELAY_VERSION, type, event: r.event } };
  }
  return { ok: true, message: o as unknown as RelayControl };
}

/** Parses a text frame the runner received from the edge. */
export function parseEdgeToRunner(text: string): RelayParseResult<EdgeToRunner> {
  return parseControl(text, EDGE_TO_RUNNER) as RelayParseResult<EdgeToRunner>;
}

/** Parses a text frame the edge received from the runner. */
export function parseRunnerToEdge(text: string): RelayParseResult<RunnerToEdge> {
  return parseControl(text, RUNNER_TO_EDGE) as RelayParseResult<RunnerToEdge>;
}

type Body<T> = T extends unknown ? Omit<T, "v"> : never;

/** Serializes a control message, stamping the version. */
export function encodeControl(message: Body<RelayControl>): string {
  return JSON.stringify({ v: RELAY_VERSION, ...message });
}
