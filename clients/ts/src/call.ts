/**
 * One call's event stream and the agent's voice on it, over one WebSocket: ozen's
 * `GET /calls/{CallSid}/events` (`docs/api.md`) with `?control=1` (`docs/agent-control.md`).
 * The same behaviour as the Python client:
 *
 * - **acks**: an event counts as read once the application took it from the iterator (or the
 *   client handled it itself: control and error messages, duplicates); `{"ack":N}` goes when the
 *   application has caught up, or every `ackEvery` messages. An application that stops reading
 *   slows only its own stream, as the protocol means.
 * - **reconnect**: a socket that closes before the call ended is opened again with `since=` the
 *   last event number received, after a short backoff; events are deduplicated by `n`.
 * - **the voice**: `play` sends an utterance (bytes, a WAV file's bytes, or an async iterable of
 *   chunks as a TTS yields them) as JSON chunks within the protocol's limit, stops sending when
 *   the edge cuts it, and returns a `Playback` whose `wait()` says what became of it.
 * - **errors**: the edge's refusals reject with `OzenError` and the edge's code, from the play
 *   they name, else from the next control call.
 */
import { encodeBase64 } from "@ozen/shared";
import type { AudioFormat, PlaybackClearedEvent, PlaybackFinishedEvent, PlaybackMarkEvent } from "@ozen/shared";
import { bytesPerSecond, checkFormat, chunkBytes, isWav, readWav } from "./audio.js";
import { OzenError } from "./errors.js";
import { parseEvent } from "./events.js";
import type { CallMessage, ControlState } from "./events.js";
import { defaultSocketFactory } from "./socket.js";
import type { ClientSocket, SocketFactory } from "./socket.js";

/** Upgrade answers that a retry cannot fix. */
const FATAL_HTTP = new Set([400, 401, 403, 404]);

/** Lets socket events that arrived run (a barge-in, an error) before the next chunk goes. */
const yieldToEvents = () => new Promise<void>((r) => setTimeout(r, 0));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A promise with its settlers, and whether it settled. */
class Deferred<T> {
  readonly promise: Promise<T>;
  settled = false;
  error: unknown;
  private res!: (v: T) => void;
  private rej!: (e: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((res, rej) => ((this.res = res), (this.rej = rej)));
    // an outcome nobody awaited (the app did not call wait()) is not an unhandled rejection
    this.promise.catch(() => {});
  }
  resolve(v: T): void {
    if (this.settled) return;
    this.settled = true;
    this.res(v);
  }
  reject(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.error = e;
    this.rej(e);
  }
}

function withTimeout<T>(p: Promise<T>, timeoutMs: number | undefined, what: string): Promise<T> {
  if (timeoutMs === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new OzenError("timeout", `no ${what} in ${timeoutMs} ms`)), timeoutMs);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

/** One utterance the agent sent: what became of it at the caller. */
export class Playback {
  /** The edge cut it (barge-in, clear, the call ended): sending more is pointless. */
  cleared = false;
  chunksSent = 0;
  audioMsSent = 0;
  /** @internal */
  readonly done = new Deferred<PlaybackFinishedEvent | PlaybackClearedEvent>();

  constructor(readonly id: string) {}

  /** The edge's refusal of this utterance, if one came. */
  get error(): OzenError | undefined {
    return this.done.error instanceof OzenError ? this.done.error : undefined;
  }

  /**
   * Until the caller heard it to the end (`playback.finished`) or it was cut (`playback.cleared`,
   * with `heardMs`); rejects with OzenError when the edge refused it.
   */
  wait(timeoutMs?: number): Promise<PlaybackFinishedEvent | PlaybackClearedEvent> {
    return withTimeout(this.done.promise, timeoutMs, `end of ${this.id}`);
  }
}

/** An agent mark: `wait()` resolves with its echo (`cleared` when a clear came first). */
export class Mark {
  /** @internal */
  readonly echo = new Deferred<PlaybackMarkEvent>();
  constructor(readonly name: string) {}
  wait(timeoutMs?: number): Promise<PlaybackMarkEvent> {
    return withTimeout(this.echo.promise, timeoutMs, `echo of mark ${this.name}`);
  }
}

/** What `play` takes: bytes (a WAV file's, or raw in `format`) or chunks as a TTS yields them. */
export type AudioSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface PlayOptions {
  /** The utterance's id (1..64 of A-Z a-z 0-9 _ . : -); default `play-<k>`. */
  readonly id?: string;
  /** Required for raw bytes and chunks; a WAV file says its own. */
  readonly format?: AudioFormat;
  /** Chunk size, ms of audio (at most 64 KiB); default 200. */
  readonly chunkMs?: number;
  /** A prerecorded utterance goes at most this far ahead of real time, ms; default 10000. */
  readonly maxAheadMs?: number;
}

export interface StreamOptions {
  /** Ask for control of the call's voice (`?control=1`); default true. */
  readonly control?: boolean;
  /** Replay the events after this number first; 0 (default): from the call's start; null: none. */
  readonly since?: number | null;
  /** Acknowledge at least every this many messages while the application is behind; default 16. */
  readonly ackEvery?: number;
  /** Consecutive failed reconnects before the stream gives up; default 20. */
  readonly maxReconnects?: number;
}

interface Item {
  readonly generation: number;
  readonly message: CallMessage;
}

/** A call's events (`for await`) and, with control, its voice. `open()` first, `close()` after. */
export class CallStream implements AsyncIterable<CallMessage> {
  /** The highest event number received: the next socket asks `since=` it. */
  lastN: number | null;
  /** Sockets opened (1 + reconnects) and duplicates dropped, for tests and logs. */
  connections = 0;
  duplicatesDropped = 0;
  private ws: ClientSocket | undefined;
  private generation = 0;
  private received = 0;
  private pending = 0;
  private acked = 0;
  private granted = false;
  private grantWaiters: (() => void)[] = [];
  private readonly queue: Item[] = [];
  private readers: ((r: IteratorResult<CallMessage>) => void)[] = [];
  private readonly plays = new Map<string, Playback>();
  private readonly marks = new Map<string, Mark[]>();
  private readonly errors: OzenError[] = [];
  private playing: Promise<unknown> = Promise.resolve();
  private playIds = 0;
  private closing = false;
  private isEnded = false;
  private finished = false;
  private fatal: OzenError | undefined;
  private failures = 0;
  private readonly wsBase: string;
  private readonly control: boolean;
  private readonly ackEvery: number;
  private readonly maxReconnects: number;

  constructor(
    baseUrl: string,
    private readonly token: string,
    readonly callSid: string,
    private readonly socket: SocketFactory,
    o: StreamOptions = {},
  ) {
    if (!/^(https?|wss?):\/\//.test(baseUrl))
      throw new TypeError(`baseUrl ${baseUrl} must start with http(s):// or ws(s)://`);
    this.wsBase = baseUrl.replace(/\/$/, "").replace(/^http/, "ws");
    this.control = o.control ?? true;
    this.lastN = o.since === undefined ? 0 : o.since;
    this.ackEvery = Math.max(1, o.ackEvery ?? 16);
    this.maxReconnects = o.maxReconnects ?? 20;
  }

  /** Whether this socket controls the call's voice now. */
  get hasControl(): boolean {
    return this.granted;
  }

  /** The call ended (`call.ended` came, or the edge closed the stream with 1000). */
  get ended(): boolean {
    return this.isEnded;
  }

  /** Opens the first socket; rejects with OzenError (`http_401`, ...) when the edge refuses it. */
  async open(): Promise<void> {
    if (this.ws) return;
    this.attach(await this.connect());
  }

  /** Closes the socket; the iterator ends. */
  async close(): Promise<void> {
    this.closing = true;
    this.ws?.close(1000, "agent done");
    this.finish();
  }

  private url(): string {
    const q = new URLSearchParams();
    if (this.control) q.set("control", "1");
    if (this.lastN !== null) q.set("since", String(this.lastN));
    const query = q.toString();
    return `${this.wsBase}/calls/${encodeURIComponent(this.callSid)}/events${query ? `?${query}` : ""}`;
  }

  private connect(): Promise<ClientSocket> {
    return this.socket(this.url(), this.token);
  }

  private attach(ws: ClientSocket): void {
    this.ws = ws;
    this.generation++;
    this.received = this.pending = this.acked = 0;
    this.granted = false;
    this.connections++;
    const generation = this.generation;
    ws.addEventListener("message", (ev) => {
      if (generation === this.generation && typeof ev.data === "string") this.onText(ev.data);
    });
    let closed = false;
    const onClose = (code: number) => {
      if (closed || generation !== this.generation) return;
      closed = true;
      this.granted = false;
      if (this.closing || this.isEnded || code === 1000) {
        this.isEnded ||= code === 1000;
        this.finish();
        return;
      }
      void this.reconnect(code);
    };
    ws.addEventListener("close", (ev) => onClose(ev.code));
    ws.addEventListener("error", () => onClose(1006));
  }

  private async reconnect(code: number): Promise<void> {
    for (;;) {
      if (this.closing) return this.finish();
      this.failures++;
      if (this.failures > this.maxReconnects) {
        this.fatal = new OzenError(
          "connection_lost",
          `the event socket closed (${code}) and ${this.maxReconnects} reconnects failed`,
        );
        return this.finish();
      }
      await sleep(Math.min(5000, 100 * 2 ** (this.failures - 1)));
      try {
        const ws = await this.connect();
        if (this.closing) {
          ws.close(1000, "agent done");
          return this.finish();
        }
        this.failures = 0;
        this.attach(ws);
        return;
      } catch (e) {
        if (e instanceof OzenError && e.code.startsWith("http_") && FATAL_HTTP.has(Number(e.code.slice(5)))) {
          this.fatal = e;
          return this.finish();
        }
      }
    }
  }

  /** The stream is over: the iterator ends, what still waits is told. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const ended = this.fatal ?? new OzenError("call_ended", "the call's event stream ended");
    for (const p of this.plays.values()) p.done.reject(ended);
    for (const list of this.marks.values()) for (const m of list) m.echo.reject(ended);
    this.marks.clear();
    for (const r of this.readers.splice(0)) r({ done: true, value: undefined });
  }

  // ---- receiving

  private onText(text: string): void {
    this.received++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const o = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
    if (o?.["type"] === "error") {
      const playId = typeof o["id"] === "string" ? o["id"] : undefined;
      const error = new OzenError(String(o["code"] ?? "error"), String(o["message"] ?? ""), playId);
      const p = playId === undefined ? undefined : this.plays.get(playId);
      if (p) p.done.reject(error);
      else this.errors.push(error);
    } else if (o?.["type"] === "control") {
      if (o["state"] === "granted" || o["state"] === "lost") {
        this.granted = o["state"] === "granted";
        if (this.granted) for (const w of this.grantWaiters.splice(0)) w();
        const message: ControlState = {
          type: "control",
          state: o["state"],
          ...(typeof o["reason"] === "string" ? { reason: o["reason"] } : {}),
        };
        this.deliver(message);
      }
    } else if (o) {
      const n = o["n"];
      if (typeof n === "number" && this.lastN !== null && n <= this.lastN) {
        this.duplicatesDropped++;
      } else {
        if (typeof n === "number") this.lastN = n;
        const event = parseEvent(o);
        this.note(event);
        this.deliver(event);
      }
    }
    this.maybeAck();
  }

  /** Bookkeeping of the voice: playbacks and marks settle on their events. */
  private note(e: CallMessage): void {
    if (e.type === "playback.finished" || e.type === "playback.cleared") {
      const p = this.plays.get(e.playId);
      if (p) {
        this.plays.delete(e.playId);
        if (e.type === "playback.cleared") p.cleared = true;
        p.done.resolve(e);
      }
    } else if (e.type === "playback.mark") {
      this.marks.get(e.name)?.shift()?.echo.resolve(e);
    } else if (e.type === "call.ended") {
      this.isEnded = true;
    }
  }

  private deliver(message: CallMessage): void {
    const reader = this.readers.shift();
    if (reader) {
      // taken at once: read already
      reader({ done: false, value: message });
      return;
    }
    this.pending++;
    this.queue.push({ generation: this.generation, message });
  }

  private maybeAck(): void {
    const consumed = this.received - this.pending;
    if (consumed <= this.acked) return;
    if (this.pending > 0 && consumed - this.acked < this.ackEvery) return;
    this.acked = consumed;
    try {
      this.ws?.send(JSON.stringify({ ack: consumed }));
    } catch {
      // closing: the next socket starts its own count
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<CallMessage> {
    return {
      next: () => {
        const item = this.queue.shift();
        if (item) {
          if (item.generation === this.generation) {
            this.pending--;
            this.maybeAck();
          }
          return Promise.resolve({ done: false, value: item.message });
        }
        if (this.finished) {
          return this.fatal ? Promise.reject(this.fatal) : Promise.resolve({ done: true, value: undefined });
        }
        return new Promise((resolve) => this.readers.push(resolve));
      },
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  // ---- the voice

  private async controller(): Promise<ClientSocket> {
    const pending = this.errors.shift();
    if (pending) throw pending;
    if (!this.control) throw new OzenError("not_controller", "this stream was opened read-only (control: false)");
    if (!this.granted) {
      await withTimeout(new Promise<void>((r) => this.grantWaiters.push(r)), 10_000, "control from the edge").catch(
        () => {
          throw new OzenError("not_controller", "the edge has not granted control");
        },
      );
    }
    return this.ws!;
  }

  private send(ws: ClientSocket, message: object): void {
    try {
      ws.send(JSON.stringify(message));
    } catch (e) {
      throw new OzenError("connection_lost", `the event socket closed (${String(e)})`);
    }
  }

  /** Stops the agent's voice now (`clear`): every queued or playing utterance is cut. */
  async clear(): Promise<void> {
    this.send(await this.controller(), { type: "clear" });
  }

  /** A named point after everything sent so far; `await mark.wait()` for its echo. */
  async mark(name: string): Promise<Mark> {
    const ws = await this.controller();
    const m = new Mark(name);
    const list = this.marks.get(name) ?? [];
    list.push(m);
    this.marks.set(name, list);
    this.send(ws, { type: "mark", name });
    return m;
  }

  /**
   * Speaks one utterance; resolves once all of it is sent (or it was cut meanwhile). Utterances
   * queue behind each other: a second `play` sends after the first one has. Rejects with
   * OzenError and the edge's code when the edge refuses it.
   */
  play(audio: AudioSource, o: PlayOptions = {}): Promise<Playback> {
    const run = this.playing.then(() => this.playNow(audio, o));
    this.playing = run.catch(() => {});
    return run;
  }

  private async playNow(audio: AudioSource, o: PlayOptions): Promise<Playback> {
    let format = o.format;
    let source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
    if (audio instanceof Uint8Array) {
      if (isWav(audio)) {
        const wav = readWav(audio);
        format = wav.format;
        source = [wav.audio];
      } else source = [audio];
    } else source = audio;
    if (!format) throw new TypeError("raw audio and chunks need options.format (or pass a WAV file's bytes)");
    checkFormat(format);
    const ws = await this.controller();
    const generation = this.generation;
    const id = o.id ?? `play-${++this.playIds}`;
    const playback = new Playback(id);
    this.plays.set(id, playback);
    this.send(ws, { type: "play", id, encoding: format.encoding, sampleRate: format.sampleRateHz });
    const size = chunkBytes(format, o.chunkMs ?? 200);
    const rate = bytesPerSecond(format);
    const maxAheadMs = o.maxAheadMs ?? 10_000;
    const started = performance.now();
    let carry: Uint8Array = new Uint8Array(0);
    const check = async () => {
      await yieldToEvents();
      if (playback.error) throw playback.error;
      if (generation !== this.generation && !playback.cleared)
        throw new OzenError("connection_lost", "the socket was replaced mid-utterance; the edge ended what it got", id);
    };
    outer: for await (const piece of source) {
      let bytes = piece;
      if (carry.length > 0) {
        bytes = new Uint8Array(carry.length + piece.length);
        bytes.set(carry);
        bytes.set(piece, carry.length);
        carry = new Uint8Array(0);
      }
      for (let at = 0; at < bytes.length; at += size) {
        let chunk = bytes.subarray(at, at + size);
        if (format.encoding === "pcm16" && chunk.length % 2 === 1) {
          carry = chunk.slice(chunk.length - 1);
          chunk = chunk.subarray(0, chunk.length - 1);
        }
        if (chunk.length === 0) continue;
        await check();
        if (playback.cleared) break outer;
        const aheadMs = playback.audioMsSent - (performance.now() - started);
        if (aheadMs > maxAheadMs) {
          await sleep(aheadMs - maxAheadMs);
          await check();
          if (playback.cleared) break outer;
        }
        this.send(ws, { type: "play", id, audio: encodeBase64(chunk) });
        playback.chunksSent++;
        playback.audioMsSent += (chunk.length * 1000) / rate;
      }
    }
    await check();
    if (!playback.cleared) this.send(ws, { type: "play", id, last: true });
    await check();
    return playback;
  }
}

export interface ClientOptions {
  /** The edge, `https://edge.example.com`. */
  readonly baseUrl: string;
  /** `API_TOKEN` to control; `EVENTS_TOKEN` reads only. */
  readonly token: string;
  /** How to open a WebSocket here (default: the runtime's own, `socket.ts`). */
  readonly socket?: SocketFactory;
}

/** An ozen edge and a token. */
export class OzenClient {
  private readonly socket: SocketFactory;

  constructor(private readonly o: ClientOptions) {
    this.socket = o.socket ?? defaultSocketFactory();
  }

  /** The call's stream (not yet open): `await stream.open()`, then `for await (const e of stream)`. */
  call(callSid: string, o: StreamOptions = {}): CallStream {
    return new CallStream(this.o.baseUrl, this.o.token, callSid, this.socket, o);
  }
}
