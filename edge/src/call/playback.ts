/**
 * The agent's voice on one call (adapter, `docs/agent-control.md`): the pure `CallPlayer`
 * (conversion, frames, pacing, marks) and `BargeInPolicy` (shared) wired to the call's Twilio
 * socket, its clock and one timer, its event stream and `POST /calls/{CallSid}/play`. Every
 * request is answered at once (or refused with a code); nothing here awaits on the call's path
 * except the HTTP body, which is read as it arrives.
 */
import {
  AudioArrivals,
  BargeInPolicy,
  CallPlayer,
  MAX_CHUNK_BYTES,
  WavReader,
  bytesPerSecond,
  encodeBase64,
  outboundMark,
  outboundMedia,
  parsePlayContentType,
} from "@ozen/shared";
import type {
  AudioFormat,
  BargeInDecision,
  PlayResult,
  PlaybackClearReason,
  PlaybackNote,
  PlayerAction,
  PlayerCounters,
  TranscriptEvent,
} from "@ozen/shared";
import type { VoiceConfig } from "./voice-config.js";

/** Arrival times kept for barge-in latency: 30 s of 20 ms frames. */
const ARRIVALS_KEPT = 1500;

export interface VoiceStats extends PlayerCounters {
  bargeIns: number;
  /** Barge-in latency (speech onset arriving at the edge -> clear sent), ms, the last ones. */
  bargeInLatencyMs: number[];
  /** Agent message in -> its first media frame out, when it was sent at once, ms, the last ones. */
  playPathMs: number[];
}

export interface CallVoiceOptions {
  readonly config: VoiceConfig;
  /** False on a receive-only stream (`STREAM_MODE=start`): Twilio plays nothing. */
  readonly canPlay: boolean;
  /** Sends one text message on the Twilio socket. */
  readonly send: (text: string) => void;
  /** Sends Twilio `clear` (through the call's outbound side, which counts it). */
  readonly sendClear: () => void;
  readonly streamSid: () => string;
  readonly callSid: () => string;
  /** Call audio taken so far, ms. */
  readonly audioMs: () => number;
  /** True while the call streams (after `start`, before its end). */
  readonly streaming: () => boolean;
  /** Into the call's event stream. */
  readonly emit: (e: TranscriptEvent) => void;
  readonly log: (level: "info" | "warn", msg: string, fields?: Record<string, unknown>) => void;
}

/** What a control request got: done, or refused with a code and message (`docs/agent-control.md`). */
export type ControlResult =
  PlayResult | { readonly ok: false; readonly code: "not_streaming" | "cannot_play"; readonly message: string };

const KEEP_SAMPLES = 100;

export class CallVoice {
  private readonly player: CallPlayer;
  private readonly policy: BargeInPolicy;
  private readonly arrivals = new AudioArrivals(ARRIVALS_KEPT);
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerDueMs = Infinity;
  private httpPlays = 0;
  private readonly extra = { bargeIns: 0, bargeInLatencyMs: [] as number[], playPathMs: [] as number[] };
  private ended = false;

  constructor(private readonly o: CallVoiceOptions) {
    this.player = new CallPlayer({ leadMs: o.config.leadMs, queueMs: o.config.queueMs });
    this.policy = new BargeInPolicy(o.config.bargeIn);
  }

  stats(): VoiceStats {
    const c = this.player.counters;
    return {
      ...c,
      refused: { ...c.refused },
      ...this.extra,
      bargeInLatencyMs: [...this.extra.bargeInLatencyMs],
      playPathMs: [...this.extra.playPathMs],
    };
  }

  /** Call audio up to `audioMs` arrived at `wallMs` (for barge-in latency). */
  audioArrived(audioMs: number, wallMs: number): void {
    this.arrivals.record(audioMs, wallMs);
  }

  /** A `play` chunk (`audio` decoded); `receivedAtMs` (performance.now) times the play path. */
  play(
    id: unknown,
    format: Partial<AudioFormat> | undefined,
    audio: Uint8Array,
    last: boolean,
    receivedAtMs?: number,
  ): ControlResult {
    const blocked = this.blocked();
    if (blocked) return blocked;
    const r = this.player.play(id, format, audio, last, Date.now());
    if (r.ok) this.pump(receivedAtMs);
    return r;
  }

  /** A binary frame: a chunk of the open utterance. */
  append(audio: Uint8Array, receivedAtMs?: number): ControlResult {
    const blocked = this.blocked();
    if (blocked) return blocked;
    const r = this.player.append(audio, Date.now());
    if (r.ok) this.pump(receivedAtMs);
    return r;
  }

  mark(name: unknown): ControlResult {
    const blocked = this.blocked();
    if (blocked) return blocked;
    const r = this.player.mark(name);
    if (r.ok) this.pump();
    return r;
  }

  /** The controller went away: its open utterance plays out as it is. */
  controllerGone(): void {
    this.player.endOpen();
    this.pump();
  }

  /** Stops the agent's voice (`clear` to Twilio, the queue dropped). False when the call cannot play now. */
  clear(reason: PlaybackClearReason): boolean {
    if (this.blocked()) return false;
    this.cut(reason);
    return true;
  }

  /** A mark Twilio echoed; false when it is not one of the player's. */
  onMarkEcho(name: string): boolean {
    const notes = this.player.onMarkEcho(name, Date.now());
    if (notes === null) return false;
    this.emitNotes(notes);
    this.pump();
    return true;
  }

  /** A transcript event of the call: speech onsets and meaningful partials may barge in. */
  onTranscriptEvent(e: TranscriptEvent): void {
    if (this.ended || !this.o.canPlay) return;
    const playing = this.player.playing(Date.now());
    let d: BargeInDecision | null = null;
    if (e.type === "speech.started") d = this.policy.onSpeechStarted(e.audioMs, playing);
    else if (e.type === "meaningful") d = this.policy.onMeaningful(e, playing);
    if (d) this.bargeIn(d);
  }

  /** The call is over: what was still playing is cleared (no message to Twilio: its socket is gone). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const { notes } = this.player.clear("call_ended", Date.now());
    this.emitNotes(notes);
  }

  /**
   * `POST /calls/{CallSid}/play`: the body is read as a stream and played as one utterance.
   * A body larger than the queue's room waits for room (back-pressure), never refused for it.
   */
  async playHttp(request: Request, url: URL): Promise<Response> {
    const blocked = this.blocked();
    if (blocked) return Response.json({ error: blocked.code, message: blocked.message }, { status: 409 });
    const ct = parsePlayContentType(request.headers.get("Content-Type"));
    if ("error" in ct) return Response.json({ error: "unsupported_format", message: ct.error }, { status: 415 });
    const id = url.searchParams.get("id") ?? `http-${++this.httpPlays}`;
    const wav = ct.kind === "wav" ? new WavReader() : undefined;
    let format: AudioFormat | undefined = ct.kind === "raw" ? ct.format : undefined;
    let started = false;
    const reader = request.body?.getReader();
    const fail = (status: number, code: string, message: string) => {
      if (started) this.player.play(id, undefined, new Uint8Array(0), true, Date.now());
      return Response.json({ error: code, message }, { status });
    };
    if (reader) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let bytes: Uint8Array = value;
        if (wav) {
          const step = wav.push(value);
          if (step.state === "error") return fail(400, "bad_audio", step.message);
          if (step.state === "need_more") continue;
          format = step.format;
          bytes = step.audio;
        }
        for (let at = 0; at < bytes.length || !started; at += MAX_CHUNK_BYTES) {
          const piece = bytes.subarray(at, at + MAX_CHUNK_BYTES);
          const pieceMs = (piece.length * 1000) / bytesPerSecond(format!);
          // back-pressure: wait for the queue to have room (the call may end meanwhile)
          while (this.player.roomMs < pieceMs && !this.blocked()) await new Promise((r) => setTimeout(r, 50));
          const r = this.play(id, started ? undefined : format, piece, false);
          if (!r.ok)
            return fail(
              r.code === "not_streaming" ||
                r.code === "cannot_play" ||
                r.code === "play_open" ||
                r.code === "play_ended"
                ? 409
                : 400,
              r.code,
              r.message,
            );
          started = true;
          if (at + MAX_CHUNK_BYTES >= bytes.length) break;
        }
      }
    }
    if (!started) {
      if (!format) return fail(400, "bad_audio", "the body ended before the WAV data chunk");
      const r = this.play(id, format, new Uint8Array(0), true);
      if (!r.ok) return fail(409, r.code, r.message);
    } else this.play(id, undefined, new Uint8Array(0), true);
    return Response.json({ id, queuedMs: Math.round(this.player.queuedMs) });
  }

  /**
   * Plays the account's greeting file (`GREETING_ACCOUNTS`) as utterance `greeting`. The file is
   * fetched once per isolate (cached); false when it could not be had (the caller plays the chime).
   */
  async playGreetingFile(url: string): Promise<boolean> {
    const file = await greetingFile(url);
    if (!file) {
      this.o.log("warn", "greeting file could not be fetched; the built-in greeting plays", { url });
      return false;
    }
    const res = await this.playHttp(
      new Request("https://greeting/play", {
        method: "POST",
        headers: { "Content-Type": file.contentType },
        body: file.bytes as Uint8Array<ArrayBuffer>,
      }),
      new URL("https://greeting/play?id=greeting"),
    );
    if (!res.ok) this.o.log("warn", "greeting file did not play", { url, status: res.status, error: await res.text() });
    return true;
  }

  private blocked(): {
    readonly ok: false;
    readonly code: "not_streaming" | "cannot_play";
    readonly message: string;
  } | null {
    if (!this.o.canPlay)
      return { ok: false, code: "cannot_play", message: "STREAM_MODE=start: Twilio plays nothing on a one-way stream" };
    if (this.ended || !this.o.streaming() || !this.o.streamSid()) {
      return {
        ok: false,
        code: "not_streaming",
        message: this.ended ? "the call has ended" : "the call is not streaming yet (no start from Twilio)",
      };
    }
    return null;
  }

  private bargeIn(d: BargeInDecision): void {
    const playId = this.player.currentPlayId() ?? this.player.openPlayId ?? "";
    const clearedAtMs = Date.now();
    this.cut("barge_in");
    const arrived = this.arrivals.arrivalOf(d.speechAudioMs);
    const latencyMs = arrived === undefined ? undefined : Math.max(0, clearedAtMs - arrived);
    this.extra.bargeIns++;
    if (latencyMs !== undefined) keep(this.extra.bargeInLatencyMs, latencyMs);
    this.o.emit({
      v: 1,
      type: "barge_in",
      callSid: this.o.callSid(),
      wallMs: clearedAtMs,
      policy: d.policy,
      playId: playId || "unknown",
      speechAudioMs: d.speechAudioMs,
      audioMs: this.o.audioMs(),
      ...(latencyMs === undefined ? {} : { latencyMs }),
    });
  }

  private cut(reason: PlaybackClearReason): void {
    const { actions, notes } = this.player.clear(reason, Date.now());
    this.sendActions(actions);
    this.emitNotes(notes);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDueMs = Infinity;
  }

  /** Sends what the player allows now and sets the timer for the rest. */
  private pump(receivedAtMs?: number): void {
    if (this.ended) return;
    const now = Date.now();
    const actions = this.player.pump(now);
    this.sendActions(actions);
    if (receivedAtMs !== undefined && actions.some((a) => a.kind === "media"))
      keep(this.extra.playPathMs, performance.now() - receivedAtMs);
    const due = this.player.nextWakeMs(now);
    if (due === undefined) return;
    if (this.timer && due >= this.timerDueMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDueMs = due;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDueMs = Infinity;
        this.pump();
      },
      Math.max(1, due - now),
    );
  }

  private sendActions(actions: readonly PlayerAction[]): void {
    const sid = this.o.streamSid();
    for (const a of actions) {
      if (a.kind === "media") this.o.send(outboundMedia(sid, encodeBase64(a.payload)));
      else if (a.kind === "mark") this.o.send(outboundMark(sid, a.name));
      else this.o.sendClear();
    }
  }

  private emitNotes(notes: readonly PlaybackNote[]): void {
    const base = { v: 1 as const, callSid: this.o.callSid(), wallMs: Date.now(), audioMs: this.o.audioMs() };
    for (const n of notes) this.o.emit({ ...base, ...n });
  }
}

/** Greeting files by URL, fetched once per isolate; a failed fetch is tried again by the next call. */
const greetingFiles = new Map<string, Promise<{ contentType: string; bytes: Uint8Array } | null>>();
/** A greeting file larger than this is refused (a minute of 16 kHz PCM is 1.9 MB). */
const MAX_GREETING_BYTES = 4 << 20;

function greetingFile(url: string): Promise<{ contentType: string; bytes: Uint8Array } | null> {
  let p = greetingFiles.get(url);
  if (!p) {
    p = (async () => {
      try {
        const res = await fetch(url);
        if (!res.ok) return null;
        const bytes = new Uint8Array(await res.arrayBuffer()) as Uint8Array<ArrayBuffer>;
        if (bytes.length > MAX_GREETING_BYTES) return null;
        return { contentType: res.headers.get("Content-Type") ?? "audio/wav", bytes };
      } catch {
        return null;
      }
    })();
    greetingFiles.set(url, p);
    void p.then((f) => {
      if (!f) greetingFiles.delete(url);
    });
  }
  return p;
}

function keep(list: number[], v: number): void {
  list.push(Math.round(v * 100) / 100);
  if (list.length > KEEP_SAMPLES) list.shift();
}
