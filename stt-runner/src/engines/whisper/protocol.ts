/**
 * The runner ↔ whisper worker wire format (docs/whisper-protocol.md), both directions, pure:
 * encoders return bytes, `FrameDecoder` is fed bytes as they come off a pipe and returns whole
 * frames. Each frame: `u32 BE` length of what follows, `u8` kind, payload.
 *   kind 0x01 JSON: one UTF-8 JSON object with a string `type`
 *   kind 0x02 audio: `u16 BE` key length, key (UTF-8), `f64 BE` start sample (8 kHz), PCM16 LE mono
 * Hand-written: a length-prefixed frame is a few lines, and no library owns this format.
 */

export const FRAME_JSON = 0x01;
export const FRAME_AUDIO = 0x02;
/** Largest frame body (kind + payload) either side accepts. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** A JSON message: an object with a string `type`. */
export type JsonMessage = { readonly type: string } & Readonly<Record<string, unknown>>;

export interface AudioFrame {
  readonly key: string;
  /** Call audio time of the first sample, in 8 kHz samples. */
  readonly startSample: number;
  readonly pcm: Int16Array;
}

export type Frame = { kind: "json"; message: JsonMessage } | { kind: "audio"; audio: AudioFrame };

/** What a decoder returns per frame: the frame, or what was wrong with it (the stream goes on). */
export type DecodedFrame = { ok: true; frame: Frame } | { ok: false; message: string };

const utf8 = new TextEncoder();
/** PCM16 LE on the wire: a little-endian host copies bytes as they are (every host Node runs on today). */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** One JSON frame. */
export function encodeJsonFrame(message: JsonMessage): Uint8Array {
  const body = utf8.encode(JSON.stringify(message));
  const out = new Uint8Array(5 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 1 + body.length);
  out[4] = FRAME_JSON;
  out.set(body, 5);
  return out;
}

/** One audio frame: `pcm` (8 kHz PCM16) starting at call sample `startSample`, for session `key`. */
export function encodeAudioFrame(key: string, startSample: number, pcm: Int16Array): Uint8Array {
  const k = utf8.encode(key);
  if (k.length > 0xffff) throw new RangeError(`session key is ${k.length} bytes, the limit is 65535`);
  const bodyLen = 1 + 2 + k.length + 8 + pcm.length * 2;
  const out = new Uint8Array(4 + bodyLen);
  const view = new DataView(out.buffer);
  view.setUint32(0, bodyLen);
  out[4] = FRAME_AUDIO;
  view.setUint16(5, k.length);
  out.set(k, 7);
  view.setFloat64(7 + k.length, startSample);
  const at = 15 + k.length;
  if (LITTLE_ENDIAN_HOST) out.set(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength), at);
  else for (let i = 0; i < pcm.length; i++) view.setInt16(at + i * 2, pcm[i]!, true);
  return out;
}

function decodeBody(body: Uint8Array): DecodedFrame {
  const kind = body[0];
  if (kind === FRAME_JSON) {
    let value: unknown;
    try {
      value = JSON.parse(utf8Decoder.decode(body.subarray(1)));
    } catch {
      return { ok: false, message: `JSON frame of ${body.length - 1} bytes is not UTF-8 JSON` };
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return { ok: false, message: "JSON frame is not an object" };
    }
    if (typeof (value as { type?: unknown }).type !== "string") {
      return { ok: false, message: "JSON frame has no string `type`" };
    }
    return { ok: true, frame: { kind: "json", message: value as JsonMessage } };
  }
  if (kind === FRAME_AUDIO) {
    if (body.length < 3) return { ok: false, message: `audio frame is ${body.length} bytes, too short for a key` };
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const keyLen = view.getUint16(1);
    const pcmAt = 3 + keyLen + 8;
    if (body.length < pcmAt) {
      return { ok: false, message: `audio frame is ${body.length} bytes, its ${keyLen}-byte key needs ${pcmAt}` };
    }
    if ((body.length - pcmAt) % 2 !== 0) return { ok: false, message: "audio frame has an odd number of PCM bytes" };
    let key: string;
    try {
      key = utf8Decoder.decode(body.subarray(3, 3 + keyLen));
    } catch {
      return { ok: false, message: "audio frame key is not UTF-8" };
    }
    const startSample = view.getFloat64(3 + keyLen);
    if (!Number.isFinite(startSample) || startSample < 0) {
      return { ok: false, message: `audio frame start sample is ${startSample}` };
    }
    const pcm = new Int16Array((body.length - pcmAt) / 2);
    for (let i = 0; i < pcm.length; i++) pcm[i] = view.getInt16(pcmAt + i * 2, true);
    return { ok: true, frame: { kind: "audio", audio: { key, startSample, pcm } } };
  }
  return { ok: false, message: `unknown frame kind ${kind ?? "(empty frame)"}` };
}

/**
 * Reassembles frames from a byte stream cut anywhere. A frame whose declared length is over the
 * limit cannot be skipped safely (the length may be garbage): the decoder reports it and stops
 * (`broken`); the owner of the pipe decides what to do with the peer.
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  broken = false;

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Bytes from the pipe; returns every frame they complete, in order. */
  push(bytes: Uint8Array): DecodedFrame[] {
    if (this.broken) return [];
    if (bytes.length > 0) {
      this.chunks.push(bytes);
      this.buffered += bytes.length;
    }
    const out: DecodedFrame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = ((head[0]! << 24) >>> 0) + (head[1]! << 16) + (head[2]! << 8) + head[3]!;
      if (len === 0 || len > this.maxFrameBytes) {
        this.broken = true;
        out.push({ ok: false, message: `frame length ${len} is outside 1..${this.maxFrameBytes}` });
        break;
      }
      if (this.buffered < 4 + len) break;
      const whole = this.take(4 + len);
      out.push(decodeBody(whole.subarray(4)));
    }
    return out;
  }

  /** Bytes held for a frame not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.concat(n);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = this.concat(n);
      let left = n;
      while (left > 0) {
        const c = this.chunks[0]!;
        if (c.length <= left) {
          left -= c.length;
          this.chunks.shift();
        } else {
          this.chunks[0] = c.subarray(left);
          left = 0;
        }
      }
    }
    this.buffered -= n;
    return out;
  }

  private concat(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, Math.min(c.length, n - at));
      out.set(part, at);
      at += part.length;
      if (at === n) break;
    }
    return out;
  }
}

// ---- worker -> runner messages, typed ----

export type WorkerMessage =
  | {
      type: "ready";
      model: string;
      /** Where the model was loaded from (the worker adds it). */
      path?: string;
      multilingual: boolean;
      device: string;
      compute_type: string;
      pool: number;
    }
  | { type: "fatal"; code: string; message: string }
  | { type: "vad"; key: string; event: "start" | "end"; ms: number }
  | {
      type: "partial";
      key: string;
      utt: number;
      text: string;
      stable: string;
      audio_start_ms: number;
      audio_end_ms: number;
      decode_ms: number;
    }
  | {
      type: "final";
      key: string;
      utt: number;
      text: string;
      audio_start_ms: number;
      audio_end_ms: number;
      decode_ms: number;
      beam: number;
      /** `decode`: a final pass of its own; `partials`: the text of two agreeing partial passes (no decode). */
      source?: "decode" | "partials";
    }
  | { type: "closed"; key: string }
  | { type: "error"; key?: string; code: string; message: string }
  | ({ type: "stats" } & Record<string, unknown>);

/** Checks a worker's JSON message against the protocol; a message naming what is wrong otherwise. */
export function parseWorkerMessage(
  m: JsonMessage,
): { ok: true; message: WorkerMessage } | { ok: false; message: string } {
  const str = (k: string) => typeof m[k] === "string";
  const num = (k: string) => typeof m[k] === "number" && Number.isFinite(m[k]);
  const need = (...checks: [string, boolean][]) => {
    const bad = checks.find(([, ok]) => !ok);
    return bad
      ? { ok: false as const, message: `worker ${m.type} message: ${bad[0]} is missing or mistyped` }
      : undefined;
  };
  let problem: { ok: false; message: string } | undefined;
  switch (m.type) {
    case "ready":
      problem = need(["model", str("model")]);
      break;
    case "fatal":
      problem = need(["code", str("code")], ["message", str("message")]);
      break;
    case "vad":
      problem = need(["key", str("key")], ["event", m["event"] === "start" || m["event"] === "end"], ["ms", num("ms")]);
      break;
    case "partial":
      problem = need(
        ["key", str("key")],
        ["utt", num("utt")],
        ["text", str("text")],
        ["stable", str("stable")],
        ["audio_start_ms", num("audio_start_ms")],
        ["audio_end_ms", num("audio_end_ms")],
      );
      break;
    case "final":
      problem = need(
        ["key", str("key")],
        ["utt", num("utt")],
        ["text", str("text")],
        ["audio_start_ms", num("audio_start_ms")],
        ["audio_end_ms", num("audio_end_ms")],
      );
      break;
    case "closed":
      problem = need(["key", str("key")]);
      break;
    case "error":
      problem = need(["code", str("code")]);
      break;
    case "stats":
      break;
    default:
      return { ok: false, message: `worker message type ${JSON.stringify(m.type.slice(0, 40))} is not in protocol v1` };
  }
  return problem ?? { ok: true, message: m as unknown as WorkerMessage };
}
