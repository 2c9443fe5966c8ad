/**
 * The call simulator: plays Twilio against an edge. It POSTs the voice webhook signed like
 * Twilio, reads the TwiML back, opens the stream URL with a signed upgrade, and sends
 * `connected`, `start`, 20 ms `media` frames at real-time pace and `stop`, built with the same
 * shared protocol core the edge parses with. What the edge sends back is played like Twilio does
 * (`TwilioPlayoutBuffer`: buffered media played in real time, a mark echoed only when the audio
 * before it has played, `clear` empties the buffer and echoes the pending marks), at the call's
 * `speed`; what the caller heard can be kept (`heard`).
 */
import { performance } from "node:perf_hooks";
import { Agent, fetch as undiciFetch } from "undici";
import type { RequestInit, Response } from "undici";
import WebSocket from "ws";
import {
  TwilioPlayoutBuffer,
  computeTwilioSignature,
  encodeBase64,
  parseStreamTwiml,
  parseTwilioValue,
  serializeInbound,
} from "@ozen/shared";
import type { ParsedStreamTwiml, TwilioInbound } from "@ozen/shared";

export const FRAME_BYTES = 160;
export const FRAME_MS = 20;

export interface CallIdentity {
  readonly callSid: string;
  readonly accountSid: string;
  readonly streamSid: string;
}

let counter = 0;
/** A fresh Twilio-shaped identity (CA/AC/MZ + 32 hex). */
export function newIdentity(): CallIdentity {
  const hex = (p: string) => {
    counter++;
    const rand = Array.from({ length: 24 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
    return p + rand + counter.toString(16).padStart(8, "0");
  };
  return { callSid: hex("CA"), accountSid: "AC" + "0".repeat(32), streamSid: hex("MZ") };
}

export interface WebhookOptions {
  /** Where the edge listens, e.g. http://127.0.0.1:8787 */
  readonly edgeUrl: string;
  /** The public base Twilio would call (the edge's PUBLIC_BASE_URL); defaults to edgeUrl. */
  readonly publicUrl?: string;
  readonly authToken: string;
  readonly identity: CallIdentity;
  /** Sign wrongly or not at all (bad-input tests). */
  readonly signature?: "valid" | "bad" | "none";
}

/**
 * Each HTTP request of the simulator to the edge goes on a connection of its own (undici's
 * `pipelining: 0`: `Connection: close`, nothing pooled). Over a kept-alive connection, a request
 * sent as workerd closes that idle socket fails before any response ("fetch failed: other side
 * closed", seen once in CI in a test's setup); a fresh connection per request costs one loopback
 * handshake, and Twilio's webhooks come one per call anyway. The stream's upgrade (`ws`) dials
 * its own socket already.
 */
const ownConnectionPerRequest = new Agent({ pipelining: 0 });

/** `fetch` on a connection of its own, closed after the response (`ownConnectionPerRequest`). */
export function fetchOnOwnConnection(url: string, init: RequestInit = {}): Promise<Response> {
  return undiciFetch(url, { ...init, dispatcher: ownConnectionPerRequest });
}

/** Twilio's voice webhook: a signed form POST. Returns the stream the TwiML names. */
export async function requestTwiml(o: WebhookOptions): Promise<ParsedStreamTwiml> {
  const params = {
    AccountSid: o.identity.accountSid,
    CallSid: o.identity.callSid,
    CallStatus: "ringing",
    Direction: "inbound",
    From: "+972500000000",
    To: "+972500000001",
  };
  const signed = (o.publicUrl ?? o.edgeUrl) + "/twilio/voice";
  const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
  if (o.signature !== "none") {
    headers["X-Twilio-Signature"] = await computeTwilioSignature(
      o.signature === "bad" ? "wrong" : o.authToken,
      signed,
      params,
    );
  }
  const res = await fetchOnOwnConnection(o.edgeUrl + "/twilio/voice", {
    method: "POST",
    headers,
    body: new URLSearchParams(params),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`webhook answered ${res.status}: ${body.slice(0, 200)}`);
  const twiml = parseStreamTwiml(body);
  if (!twiml) throw new Error(`webhook TwiML has no <Stream>: ${body.slice(0, 200)}`);
  return twiml;
}

export interface StreamOptions {
  readonly edgeUrl: string;
  readonly publicUrl?: string;
  readonly authToken: string;
  /** The URL from the TwiML (signed as is); the socket goes to the same path on edgeUrl. */
  readonly streamUrl: string;
  readonly signature?: "valid" | "bad" | "none";
}

/** Opens the Media Streams socket like Twilio: the upgrade signed over the exact stream URL. */
export async function openStream(o: StreamOptions): Promise<WebSocket> {
  const headers: Record<string, string> = {};
  if (o.signature !== "none") {
    headers["X-Twilio-Signature"] = await computeTwilioSignature(
      o.signature === "bad" ? "wrong" : o.authToken,
      o.streamUrl,
    );
  }
  const path = new URL(o.streamUrl).pathname;
  const target = o.edgeUrl.replace(/^http/, "ws") + path;
  const ws = new WebSocket(target, "audio.twilio.com", { headers, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => reject(new Error(`stream upgrade answered HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
  return ws;
}

/** The Twilio messages of one stream, numbered the way Twilio numbers them. */
export class TwilioStreamScript {
  private seq = 1;
  private chunk = 1;
  /** Twilio's first media timestamp is not 0. */
  private timestampMs: number;

  constructor(
    readonly identity: CallIdentity,
    readonly customParameters: Record<string, string>,
    firstTimestampMs = 99,
  ) {
    this.timestampMs = firstTimestampMs;
  }

  connected(): string {
    return serializeInbound({ event: "connected", protocol: "Call", version: "1.0.0" });
  }

  start(): string {
    const { accountSid, callSid, streamSid } = this.identity;
    return serializeInbound({
      event: "start",
      sequenceNumber: this.seq++,
      streamSid,
      start: {
        accountSid,
        streamSid,
        callSid,
        tracks: ["inbound"],
        customParameters: this.customParameters,
        mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
      },
    });
  }

  /** The next media message; returns its sequenceNumber too (acks name it). */
  media(mulaw: Uint8Array): { text: string; sequenceNumber: number } {
    const sequenceNumber = this.seq++;
    const text = serializeInbound({
      event: "media",
      sequenceNumber,
      streamSid: this.identity.streamSid,
      media: { track: "inbound", chunk: this.chunk++, timestamp: this.timestampMs, payload: encodeBase64(mulaw) },
    });
    this.timestampMs += Math.round((mulaw.length * 1000) / 8000);
    return { text, sequenceNumber };
  }

  mark(name: string): string {
    return serializeInbound({
      event: "mark",
      sequenceNumber: this.seq++,
      streamSid: this.identity.streamSid,
      mark: { name },
    });
  }

  dtmf(digit: string): string {
    return serializeInbound({
      event: "dtmf",
      sequenceNumber: this.seq++,
      streamSid: this.identity.streamSid,
      dtmf: { track: "inbound_track", digit },
    });
  }

  stop(): string {
    const { accountSid, callSid, streamSid } = this.identity;
    return serializeInbound({ event: "stop", sequenceNumber: this.seq++, streamSid, stop: { accountSid, callSid } });
  }
}

export interface CallOptions {
  readonly edgeUrl: string;
  readonly publicUrl?: string;
  readonly authToken: string;
  /** 8 kHz mu-law audio; cycled when the call is longer than it. */
  readonly audio: Uint8Array;
  /** How long to stream; default: the audio's length. */
  readonly seconds?: number;
  /** Pace multiplier: 1 = real time (Twilio), 10 = ten times faster. */
  readonly speed?: number;
  /** Use the benchmark's naive handler route. */
  readonly naive?: boolean;
  /** Acks before this many ms into the call are not counted (warm-up). */
  readonly warmupMs?: number;
  readonly identity?: CallIdentity;
  /** Every message the edge sends, parsed where it is Twilio-shaped. */
  readonly onMessage?: (message: unknown, atMs: number) => void;
  /** Called when steady state begins and ends (after warm-up, before stop). */
  readonly onPhase?: (phase: "steady" | "end") => void;
  /** Called after each media frame is sent. */
  readonly onFrameSent?: () => void;
  /** Keep what the caller heard (mu-law 8 kHz, silence where nothing played) in `CallResult.heard`. */
  readonly keepHeard?: boolean;
}

export interface CallResult {
  readonly callSid: string;
  readonly framesSent: number;
  /** Simulator send -> the edge's `ozen-ack` mark naming that frame, ms, after warm-up. */
  readonly ackMs: number[];
  readonly acksReceived: number;
  /** `start` sent -> first outbound media received, ms. */
  readonly greetingMs: number | null;
  readonly greetingBytes: number;
  readonly received: Record<string, number>;
  readonly closeCode: number | null;
  /** What the caller heard, mu-law 8 kHz from `start` (with `keepHeard`). */
  readonly heard?: Uint8Array;
  /** Twilio's buffer: most agent audio waiting at once, ms, and media dropped by `clear`, bytes. */
  readonly outboundBufferMsMax: number;
  readonly outboundClearedBytes: number;
}

/** One whole call: webhook, stream, real-time media, stop; resolves when the edge closes or after a grace. */
export async function placeCall(o: CallOptions): Promise<CallResult> {
  const identity = o.identity ?? newIdentity();
  const twiml = await requestTwiml({ edgeUrl: o.edgeUrl, publicUrl: o.publicUrl, authToken: o.authToken, identity });
  let streamUrl = twiml.streamUrl;
  if (o.naive) streamUrl = streamUrl.replace("/twilio/stream/", "/twilio/stream-naive/");
  const ws = await openStream({ edgeUrl: o.edgeUrl, publicUrl: o.publicUrl, authToken: o.authToken, streamUrl });
  const script = new TwilioStreamScript(identity, twiml.parameters);
  const frames = Math.max(1, Math.round(((o.seconds ?? o.audio.length / 8000) * 1000) / FRAME_MS));
  // by sequenceNumber: mark echoes take numbers too, so media numbers are not contiguous
  const sentAt = new Map<number, number>();
  const ackMs: number[] = [];
  const received: Record<string, number> = {};
  let acksReceived = 0;
  let greetingMs: number | null = null;
  let greetingBytes = 0;
  let startAt = 0;
  let t0 = 0;
  const warmupMs = o.warmupMs ?? 0;
  let closeCode: number | null = null;
  const speed = o.speed ?? 1;
  // Twilio's outbound buffer, on the call's clock (real time times `speed`)
  const twilio = new TwilioPlayoutBuffer();
  const heard: Uint8Array[] = [];
  const callClockMs = () => (performance.now() - startAt) * speed;
  const played = (step: { echoes: string[]; heard: Uint8Array }) => {
    if (o.keepHeard) heard.push(step.heard);
    for (const name of step.echoes) if (ws.readyState === WebSocket.OPEN) ws.send(script.mark(name));
  };

  ws.on("message", (data) => {
    const at = performance.now();
    let value: unknown;
    try {
      value = JSON.parse(data.toString());
    } catch {
      received["non_json"] = (received["non_json"] ?? 0) + 1;
      return;
    }
    const event = (value as { event?: unknown }).event;
    const key = typeof event === "string" ? event : "unknown";
    received[key] = (received[key] ?? 0) + 1;
    if (key === "media") {
      if (greetingMs === null) greetingMs = at - startAt;
      const payload = (value as { media?: { payload?: string } }).media?.payload ?? "";
      const bytes = Buffer.from(payload, "base64");
      greetingBytes += bytes.length;
      played(twilio.media(new Uint8Array(bytes), callClockMs()));
    } else if (key === "clear") {
      played(twilio.clear(callClockMs()));
    } else if (key === "mark") {
      const name = (value as { mark?: { name?: string } }).mark?.name ?? "";
      if (name.startsWith("ozen-ack:")) {
        acksReceived++;
        const sentMs = sentAt.get(Number(name.slice(9)));
        if (sentMs !== undefined && sentMs - t0 >= warmupMs) ackMs.push(at - sentMs);
      } else {
        // play Twilio: the mark is echoed when the audio before it has played
        played(twilio.mark(name, callClockMs()));
      }
    }
    o.onMessage?.(value, at);
  });
  const closed = new Promise<void>((resolve) => ws.once("close", (code) => ((closeCode = code), resolve())));

  ws.send(script.connected());
  startAt = performance.now();
  played(twilio.advance(0));
  const playout = setInterval(() => played(twilio.advance(callClockMs())), 10);
  ws.send(script.start());
  t0 = performance.now();
  const totalFrames = Math.floor(o.audio.length / FRAME_BYTES);
  let sent = 0;
  let steady = false;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(frames, Math.floor(((now - t0) * speed) / FRAME_MS) + 1);
      while (sent < due && ws.readyState === WebSocket.OPEN) {
        const i = sent % Math.max(1, totalFrames);
        const m = script.media(o.audio.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES));
        sentAt.set(m.sequenceNumber, performance.now());
        ws.send(m.text);
        sent++;
        o.onFrameSent?.();
      }
      if (!steady && now - t0 >= warmupMs) {
        steady = true;
        o.onPhase?.("steady");
      }
      if (sent >= frames || ws.readyState !== WebSocket.OPEN) {
        resolve();
        return;
      }
      setTimeout(
        tick,
        Math.max(1, Math.min(FRAME_MS / speed, (FRAME_MS * (sent + 1)) / speed - (performance.now() - t0))),
      );
    };
    tick();
  });
  o.onPhase?.("end");
  if (ws.readyState === WebSocket.OPEN) ws.send(script.stop());
  // the edge closes after stop; do not wait forever if it does not
  await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
  clearInterval(playout);
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  return {
    callSid: identity.callSid,
    framesSent: sent,
    ackMs,
    acksReceived,
    greetingMs,
    greetingBytes,
    received,
    closeCode,
    ...(o.keepHeard ? { heard: concatBytes(heard) } : {}),
    outboundBufferMsMax: twilio.maxBufferedMs,
    outboundClearedBytes: twilio.clearedBytes,
  };
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Parses a message the edge sent into the typed union where it is an inbound-shaped one. */
export function asTwilio(value: unknown): TwilioInbound | undefined {
  const r = parseTwilioValue(value);
  return r.ok ? r.message : undefined;
}

export interface ManyCallsOptions extends Omit<CallOptions, "identity" | "onPhase" | "onFrameSent"> {
  readonly calls: number;
  /** Calls start spread over this many ms (Twilio calls do not all start in the same instant). */
  readonly rampMs?: number;
  /** Steady state (every call past warm-up) begins / ends (the first call stops sending). */
  readonly onPhase?: (phase: "steady" | "end", framesSentSoFar: number) => void;
}

export interface ManyCallsResult {
  readonly results: CallResult[];
  readonly errors: string[];
  readonly framesSent: number;
}

/** N concurrent calls from this process, each at real-time pace. */
export async function placeCalls(o: ManyCallsOptions): Promise<ManyCallsResult> {
  let framesSent = 0;
  let steadyCalls = 0;
  let ended = false;
  const ramp = o.rampMs ?? Math.min(2000, o.calls * 10);
  const errors: string[] = [];
  const results = await Promise.all(
    Array.from({ length: o.calls }, async (_, i) => {
      await new Promise((r) => setTimeout(r, (ramp * i) / o.calls));
      try {
        return await placeCall({
          ...o,
          onFrameSent: () => framesSent++,
          onPhase: (phase) => {
            if (phase === "steady" && ++steadyCalls === o.calls) o.onPhase?.("steady", framesSent);
            if (phase === "end" && !ended) {
              ended = true;
              o.onPhase?.("end", framesSent);
            }
          },
        });
      } catch (e) {
        errors.push(String(e));
        return undefined;
      }
    }),
  );
  return { results: results.filter((r): r is CallResult => r !== undefined), errors, framesSent };
}
