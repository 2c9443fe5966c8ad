/**
 * CallPlayer: the agent's voice on one call, as a pure object (`docs/agent-control.md`). The
 * adapter hands it the agent's utterances (chunks in any supported format), `clear`s, marks and
 * Twilio's mark echoes, each with `nowMs`; it converts audio to mu-law 8 kHz on arrival, cuts
 * 20 ms frames, queues them (bounded), and `pump` says what to send Twilio now (media, marks,
 * `clear`) under the pacing rule (`PlayoutPacer`) and when to wake. What the caller heard comes
 * back as notes the adapter turns into events.
 *
 * Marks the edge sends: `ozen-p:<k>` (k = 1, 2, ...), one before each utterance's first frame
 * (its echo: `playback.started`), one after its last (`playback.finished`), one per
 * `PACE_MARK_MS` of audio (pacing), and one per agent mark. A `clear` forgets every mark sent
 * before it: Twilio's echoes of them are consumed and ignored.
 */
import { PlayoutPacer } from "./pacing.js";
import { MulawConverter, bytesPerSecond, formatProblem } from "./format.js";
import type { AudioFormat } from "./format.js";
import type { PlaybackClearReason } from "../transcript/events.js";

/** One Twilio frame: 20 ms of mu-law 8 kHz. */
export const FRAME_MS = 20;
export const FRAME_BYTES = 160;
/** A pacing mark per this much audio sent, ms. */
export const PACE_MARK_MS = 200;
/** A chunk's audio, at most (bytes, in its own format). */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** Prefix of the edge's playback marks. */
export const PLAYBACK_MARK_PREFIX = "ozen-p:";
const MULAW_SILENCE = 0xff;
/** Ids remembered after they ended or were cleared (for `play_ended` and dropping late chunks). */
const REMEMBER_IDS = 64;
/** An utterance id or agent mark name: 1..64 of A-Z a-z 0-9 _ . : - */
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface PlayerOptions {
  /** Audio allowed in Twilio's buffer, ms. */
  readonly leadMs: number;
  /** Audio waiting at the edge (not yet sent), per call, at most, ms. */
  readonly queueMs: number;
}

/** Why a control request was refused (`docs/agent-control.md`, Errors). */
export type PlayRefusal =
  "bad_message" | "unsupported_format" | "chunk_too_large" | "play_open" | "play_ended" | "no_open_play" | "queue_full";

export type PlayResult =
  | { readonly ok: true; readonly dropped?: "after_clear" }
  | { readonly ok: false; readonly code: PlayRefusal; readonly message: string };

/** What to send Twilio, in order. `payload` is a view: encode it before the next call. */
export type PlayerAction =
  | { readonly kind: "media"; readonly payload: Uint8Array }
  | { readonly kind: "mark"; readonly name: string }
  | { readonly kind: "clear" };

/** What the caller heard, for the adapter to stamp (`callSid`, `wallMs`, `audioMs`) into events. */
export type PlaybackNote =
  | { readonly type: "playback.started"; readonly playId: string; readonly queuedMs: number }
  | { readonly type: "playback.finished"; readonly playId: string; readonly durationMs: number }
  | {
      readonly type: "playback.cleared";
      readonly playId: string;
      readonly heardMs: number;
      readonly reason: PlaybackClearReason;
    }
  | { readonly type: "playback.mark"; readonly name: string; readonly cleared: boolean };

export interface PlayerCounters {
  plays: number;
  chunks: number;
  bytesIn: number;
  framesSent: number;
  finished: number;
  cleared: number;
  clears: number;
  /** Chunks of an utterance that were dropped because a clear cut it first. */
  chunksAfterClear: number;
  /** Refused requests, by code. */
  refused: Record<string, number>;
  /** Most audio waiting at the edge at once, ms. */
  queueMsMax: number;
}

interface Play {
  readonly id: string;
  readonly converter: MulawConverter;
  open: boolean;
  /** mu-law bytes of a frame not yet complete. */
  readonly partial: Uint8Array;
  partialBytes: number;
  /** Bytes converted (whole utterance so far). */
  totalBytes: number;
  sentBytes: number;
  /** The pacer's `sentMs` when its first frame went; -1 before. */
  startOffsetMs: number;
  readonly firstChunkAtMs: number;
  firstSentAtMs: number;
}

type Item =
  | { readonly kind: "audio"; readonly play: Play; readonly bytes: Uint8Array; at: number }
  | { readonly kind: "mark"; readonly name: string }
  | { readonly kind: "end"; readonly play: Play };

type SentMark =
  | { readonly kind: "start" | "end"; readonly play: Play; readonly atMs: number }
  | { readonly kind: "pace"; readonly atMs: number }
  | { readonly kind: "agent"; readonly name: string; readonly atMs: number };

export class CallPlayer {
  readonly counters: PlayerCounters = {
    plays: 0,
    chunks: 0,
    bytesIn: 0,
    framesSent: 0,
    finished: 0,
    cleared: 0,
    clears: 0,
    chunksAfterClear: 0,
    refused: {},
    queueMsMax: 0,
  };
  private readonly pacer: PlayoutPacer;
  private readonly queue: Item[] = [];
  private queueHead = 0;
  /** Utterances accepted and not finished or cleared, in order. */
  private plays: Play[] = [];
  private openPlay: Play | undefined;
  private queuedBytes = 0;
  private readonly sentMarks = new Map<number, SentMark>();
  private nextMark = 1;
  private lastPaceMarkMs = 0;
  private readonly endedIds: string[] = [];
  private readonly clearedIds: string[] = [];

  constructor(private readonly o: PlayerOptions) {
    this.pacer = new PlayoutPacer({ leadMs: o.leadMs, frameMs: FRAME_MS });
  }

  /** The utterance open for more chunks (binary frames go to it), if any. */
  get openPlayId(): string | undefined {
    return this.openPlay?.id;
  }

  /** Audio waiting at the edge, ms. */
  get queuedMs(): number {
    return (this.queuedBytes / FRAME_BYTES) * FRAME_MS;
  }

  /** Room left in the queue, ms. */
  get roomMs(): number {
    return Math.max(0, this.o.queueMs - this.queuedMs);
  }

  /** Whether agent audio is waiting at the edge or (estimated) in Twilio's buffer at `nowMs`. */
  playing(nowMs: number): boolean {
    return this.queuedBytes > 0 || this.pacer.bufferedMs(nowMs) > 0 || this.openPlay !== undefined;
  }

  /** The utterance the caller hears now (or the next one to), for a barge-in's event. */
  currentPlayId(): string | undefined {
    return this.plays[0]?.id;
  }

  /**
   * A chunk of utterance `id`: `format` is required on its first chunk (and must not change),
   * `audio` may be empty, `last` ends it. Refusals are counted.
   */
  play(
    id: unknown,
    format: Partial<AudioFormat> | undefined,
    audio: Uint8Array,
    last: boolean,
    nowMs: number,
  ): PlayResult {
    if (typeof id !== "string" || !NAME.test(id)) {
      return this.refuse("bad_message", `play id is ${describeId(id)}; expected 1..64 of A-Z a-z 0-9 _ . : -`);
    }
    if (this.clearedIds.includes(id)) {
      this.counters.chunksAfterClear++;
      return { ok: true, dropped: "after_clear" };
    }
    let p = this.openPlay;
    if (p && p.id !== id) {
      return this.refuse(
        "play_open",
        `utterance ${JSON.stringify(p.id)} is still open; end it (last: true) or clear first`,
      );
    }
    if (!p) {
      if (this.endedIds.includes(id)) return this.refuse("play_ended", `utterance ${JSON.stringify(id)} already ended`);
      if (format?.encoding === undefined || format.sampleRateHz === undefined) {
        return this.refuse("bad_message", "encoding and sampleRate are required on an utterance's first chunk");
      }
      const problem = formatProblem(format.encoding, format.sampleRateHz);
      if (problem) return this.refuse("unsupported_format", problem);
      const sizeCheck = this.checkChunk(audio, format as AudioFormat);
      if (sizeCheck) return sizeCheck;
      p = {
        id,
        converter: new MulawConverter(format as AudioFormat),
        open: true,
        partial: new Uint8Array(FRAME_BYTES),
        partialBytes: 0,
        totalBytes: 0,
        sentBytes: 0,
        startOffsetMs: -1,
        firstChunkAtMs: nowMs,
        firstSentAtMs: -1,
      };
      this.openPlay = p;
      this.plays.push(p);
      this.counters.plays++;
    } else {
      const f = p.converter.format;
      if (
        (format?.encoding !== undefined && format.encoding !== f.encoding) ||
        (format?.sampleRateHz !== undefined && format.sampleRateHz !== f.sampleRateHz)
      ) {
        return this.refuse(
          "bad_message",
          `utterance ${JSON.stringify(id)} is ${f.encoding} at ${f.sampleRateHz} Hz; a chunk cannot change it`,
        );
      }
      const sizeCheck = this.checkChunk(audio, f);
      if (sizeCheck) return sizeCheck;
    }
    if (audio.length > 0) {
      this.counters.chunks++;
      this.counters.bytesIn += audio.length;
      this.take(p, p.converter.convert(audio));
    }
    if (last) this.end(p);
    return { ok: true };
  }

  /** A chunk (a binary frame) of the open utterance. */
  append(audio: Uint8Array, nowMs: number): PlayResult {
    const p = this.openPlay;
    if (!p) return this.refuse("no_open_play", "a binary frame needs an open utterance: start one with a play message");
    return this.play(p.id, undefined, audio, false, nowMs);
  }

  /** The controller went away: its open utterance ends as if `last: true` came. */
  endOpen(): void {
    if (this.openPlay) this.end(this.openPlay);
  }

  /** An agent mark after everything queued so far. */
  mark(name: unknown): PlayResult {
    if (typeof name !== "string" || !NAME.test(name) || name.toLowerCase().startsWith("ozen")) {
      return this.refuse(
        "bad_message",
        `mark name is ${describeId(name)}; expected 1..64 of A-Z a-z 0-9 _ . : -, not starting with "ozen"`,
      );
    }
    this.push({ kind: "mark", name });
    return { ok: true };
  }

  /**
   * Stops the agent's voice now: Twilio's `clear`, the queue dropped, every utterance not
   * finished cleared (with what the caller heard of it), pending agent marks echoed as cleared.
   */
  clear(reason: PlaybackClearReason, nowMs: number): { actions: PlayerAction[]; notes: PlaybackNote[] } {
    const played = this.pacer.playedMs(nowMs);
    const notes: PlaybackNote[] = [];
    for (const p of this.plays) {
      const heardMs =
        p.startOffsetMs < 0
          ? 0
          : Math.max(0, Math.min(played - p.startOffsetMs, (p.sentBytes / FRAME_BYTES) * FRAME_MS));
      notes.push({ type: "playback.cleared", playId: p.id, heardMs: Math.round(heardMs), reason });
      remember(this.clearedIds, p.id);
      this.counters.cleared++;
    }
    for (const m of this.sentMarks.values())
      if (m.kind === "agent") notes.push({ type: "playback.mark", name: m.name, cleared: true });
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const it = this.queue[i]!;
      if (it.kind === "mark") notes.push({ type: "playback.mark", name: it.name, cleared: true });
    }
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.plays = [];
    this.openPlay = undefined;
    this.sentMarks.clear();
    this.pacer.cleared(nowMs);
    this.counters.clears++;
    return { actions: [{ kind: "clear" }], notes };
  }

  /**
   * Twilio echoed mark `name` at `nowMs`. Returns null when the mark is not the player's;
   * else the notes it brings (none for a pacing mark or one sent before a clear).
   */
  onMarkEcho(name: string, nowMs: number): PlaybackNote[] | null {
    if (!name.startsWith(PLAYBACK_MARK_PREFIX)) return null;
    const k = Number(name.slice(PLAYBACK_MARK_PREFIX.length));
    const m = this.sentMarks.get(k);
    if (!m) return [];
    // marks echo in order: the ones before it echoed too (or were lost with a clear)
    for (const key of this.sentMarks.keys()) {
      if (key > k) break;
      this.sentMarks.delete(key);
    }
    this.pacer.echoed(m.atMs, nowMs);
    switch (m.kind) {
      case "start":
        return [
          {
            type: "playback.started",
            playId: m.play.id,
            queuedMs: Math.max(0, m.play.firstSentAtMs - m.play.firstChunkAtMs),
          },
        ];
      case "end": {
        const i = this.plays.indexOf(m.play);
        if (i >= 0) this.plays.splice(i, 1);
        this.counters.finished++;
        return [
          { type: "playback.finished", playId: m.play.id, durationMs: (m.play.totalBytes / FRAME_BYTES) * FRAME_MS },
        ];
      }
      case "agent":
        return [{ type: "playback.mark", name: m.name, cleared: false }];
      default:
        return [];
    }
  }

  /** What may be sent to Twilio at `nowMs`, in order. */
  pump(nowMs: number): PlayerAction[] {
    const out: PlayerAction[] = [];
    let allowed = this.pacer.framesAllowed(nowMs);
    while (this.queueHead < this.queue.length) {
      const it = this.queue[this.queueHead]!;
      if (it.kind === "mark") {
        out.push(this.sendMark({ kind: "agent", name: it.name, atMs: this.pacer.sentMs }));
        this.shift();
        continue;
      }
      if (it.kind === "end") {
        out.push(this.sendMark({ kind: "end", play: it.play, atMs: this.pacer.sentMs }));
        this.shift();
        continue;
      }
      if (allowed <= 0) break;
      const p = it.play;
      if (p.startOffsetMs < 0) {
        p.startOffsetMs = this.pacer.sentMs;
        p.firstSentAtMs = nowMs;
        out.push(this.sendMark({ kind: "start", play: p, atMs: this.pacer.sentMs }));
      }
      out.push({ kind: "media", payload: it.bytes.subarray(it.at, it.at + FRAME_BYTES) });
      it.at += FRAME_BYTES;
      p.sentBytes += FRAME_BYTES;
      this.queuedBytes -= FRAME_BYTES;
      this.pacer.sent(FRAME_MS, nowMs);
      this.counters.framesSent++;
      allowed--;
      if (it.at >= it.bytes.length) this.shift();
      if (this.pacer.sentMs - this.lastPaceMarkMs >= PACE_MARK_MS) {
        this.lastPaceMarkMs = this.pacer.sentMs;
        out.push(this.sendMark({ kind: "pace", atMs: this.pacer.sentMs }));
      }
    }
    return out;
  }

  /** When `pump` has more to send (wall ms), or undefined when nothing waits. */
  nextWakeMs(nowMs: number): number | undefined {
    return this.queueHead < this.queue.length ? this.pacer.nextWakeMs(nowMs) : undefined;
  }

  /** Estimate of what Twilio holds and has not played, ms. */
  bufferedMs(nowMs: number): number {
    return this.pacer.bufferedMs(nowMs);
  }

  private checkChunk(audio: Uint8Array, f: AudioFormat): PlayResult | null {
    if (audio.length > MAX_CHUNK_BYTES) {
      return this.refuse("chunk_too_large", `chunk is ${audio.length} bytes of audio, the limit is ${MAX_CHUNK_BYTES}`);
    }
    const ms = (audio.length * 1000) / bytesPerSecond(f);
    if (ms > 0 && this.queuedMs + ms > this.o.queueMs) {
      return this.refuse(
        "queue_full",
        `the call already holds ${Math.round(this.queuedMs)} ms of audio not yet played (limit ${this.o.queueMs} ms); chunk refused`,
      );
    }
    return null;
  }

  /** Converted bytes into whole frames (a partial frame waits for the next chunk). */
  private take(p: Play, bytes: Uint8Array): void {
    p.totalBytes += bytes.length;
    let from = 0;
    if (p.partialBytes > 0) {
      const n = Math.min(FRAME_BYTES - p.partialBytes, bytes.length);
      p.partial.set(bytes.subarray(0, n), p.partialBytes);
      p.partialBytes += n;
      from = n;
      if (p.partialBytes === FRAME_BYTES) {
        this.pushAudio(p, p.partial.slice());
        p.partialBytes = 0;
      }
    }
    const whole = Math.floor((bytes.length - from) / FRAME_BYTES) * FRAME_BYTES;
    if (whole > 0) this.pushAudio(p, bytes.subarray(from, from + whole));
    const rest = bytes.length - from - whole;
    if (rest > 0) {
      p.partial.set(bytes.subarray(from + whole), 0);
      p.partialBytes = rest;
    }
  }

  private end(p: Play): void {
    this.take(p, p.converter.finish());
    if (p.partialBytes > 0) {
      // the last frame is padded with silence: every frame is 20 ms
      p.totalBytes += FRAME_BYTES - p.partialBytes;
      p.partial.fill(MULAW_SILENCE, p.partialBytes);
      this.pushAudio(p, p.partial.slice());
      p.partialBytes = 0;
    }
    p.open = false;
    if (this.openPlay === p) this.openPlay = undefined;
    remember(this.endedIds, p.id);
    this.push({ kind: "end", play: p });
  }

  private pushAudio(p: Play, bytes: Uint8Array): void {
    this.queuedBytes += bytes.length;
    this.counters.queueMsMax = Math.max(this.counters.queueMsMax, this.queuedMs);
    this.push({ kind: "audio", play: p, bytes, at: 0 });
  }

  private push(it: Item): void {
    this.queue.push(it);
  }

  private shift(): void {
    this.queueHead++;
    // compact now and then, so the queue's array does not grow with the call
    if (this.queueHead > 256 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
  }

  private sendMark(m: SentMark): PlayerAction {
    const k = this.nextMark++;
    this.sentMarks.set(k, m);
    return { kind: "mark", name: `${PLAYBACK_MARK_PREFIX}${k}` };
  }

  private refuse(code: PlayRefusal, message: string): PlayResult {
    this.counters.refused[code] = (this.counters.refused[code] ?? 0) + 1;
    return { ok: false, code, message };
  }
}

function remember(list: string[], id: string): void {
  list.push(id);
  if (list.length > REMEMBER_IDS) list.shift();
}

function describeId(v: unknown): string {
  if (typeof v === "string") return v.length > 64 ? `${v.length} characters` : JSON.stringify(v);
  return v === undefined ? "missing" : `a ${typeof v}`;
}
