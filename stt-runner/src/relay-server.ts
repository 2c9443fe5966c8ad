/**
 * The runner's side of the relay (adapter): accepts the edge's persistent WebSocket per call,
 * acknowledges audio (arrival and commit), and drives one engine session per call.
 *
 * A call's session outlives its socket for `resumeGraceMs`, so an edge that reconnects and
 * replays unacknowledged blocks is deduplicated by seq: the engine sees every block once and in
 * order. On SIGTERM (`drain`) the runner stops taking calls, tells every edge to move
 * (`goaway`), and drops its engine sessions: the edges replay what was not committed to the
 * instance the platform routes them to.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import type { RawData, WebSocket } from "ws";
import { decodeAudioFrame, encodeControl, parseEdgeToRunner } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import type { Engine, EngineListener, EngineSession } from "./engines/engine.js";
import { Metrics } from "./metrics.js";
import { ArrivalClock } from "./transcripts.js";

export type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface RelayServerOptions {
  readonly engine: Engine;
  readonly port: number;
  readonly host?: string;
  /** How long a call whose socket dropped waits for the edge to come back. */
  readonly resumeGraceMs?: number;
  /**
   * Wraps the engine listener of each call (the transcript policy and event delivery go
   * here); gets a `send` for relay text frames to the call's current socket.
   */
  readonly listenerFor?: (
    start: RelayStart,
    send: (text: string) => void,
    clock: ArrivalClock,
  ) => EngineListener & { close?(): void };
  readonly log?: Log;
}

export interface RunnerCounters {
  callsStarted: number;
  callsResumed: number;
  callsEnded: number;
  callsRefused: number;
  blocks: number;
  duplicateBlocks: number;
  gapBlocks: number;
  audioSamples: number;
  protocolErrors: number;
}

interface CallEntry {
  readonly start: RelayStart;
  readonly session: EngineSession;
  readonly listener: EngineListener & { close?(): void };
  socket: WebSocket | undefined;
  /** The next seq the engine should see. */
  expected: number;
  /** Blocks fed but not yet committed: [seq, endSample], oldest first. */
  readonly uncommitted: [number, number][];
  committedSeq: number;
  expiry: ReturnType<typeof setTimeout> | undefined;
  readonly clock: ArrivalClock;
}

const NOOP_LISTENER: EngineListener = { interim() {}, final() {}, failed() {} };

export class RelayServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly calls = new Map<string, CallEntry>();
  private draining = false;
  readonly metrics = new Metrics();
  readonly counters: RunnerCounters = {
    callsStarted: 0,
    callsResumed: 0,
    callsEnded: 0,
    callsRefused: 0,
    blocks: 0,
    duplicateBlocks: 0,
    gapBlocks: 0,
    audioSamples: 0,
    protocolErrors: 0,
  };
  private readonly log: Log;

  constructor(private readonly o: RelayServerOptions) {
    this.log =
      o.log ??
      ((level, msg, fields) => {
        if (level !== "info") console.warn(JSON.stringify({ level, msg, ...fields }));
      });
    this.http = createServer((req, res) => this.onHttp(req, res));
    this.wss = new WebSocketServer({ server: this.http, maxPayload: 1 << 20 });
    this.wss.on("connection", (ws) => this.onConnection(ws));
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve) => {
      this.http.listen(this.o.port, this.o.host ?? "127.0.0.1", () =>
        resolve((this.http.address() as AddressInfo).port),
      );
    });
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  /**
   * SIGTERM: stop taking calls, ask every edge to move (it reconnects and the platform routes
   * it to a live instance), then close. Resolves when every socket is gone or after `graceMs`.
   */
  async drain(graceMs = 10_000): Promise<void> {
    this.draining = true;
    for (const call of this.calls.values()) {
      call.socket?.send(encodeControl({ type: "goaway", reason: "runner instance is shutting down" }));
      call.socket?.close(1012, "service restart");
    }
    const deadline = Date.now() + graceMs;
    while (this.wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.close();
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    for (const c of this.calls.values()) {
      if (c.expiry) clearTimeout(c.expiry);
      c.listener.close?.();
      void c.session.end();
    }
    this.calls.clear();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    switch (req.url) {
      case "/healthz":
        res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
        return;
      case "/readyz":
        res
          .writeHead(this.draining ? 503 : 200, { "Content-Type": "text/plain" })
          .end(this.draining ? "draining\n" : "ready\n");
        return;
      case "/metrics":
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" }).end(
          this.metrics.render({
            ...this.counters,
            activeCalls: this.calls.size,
            draining: this.draining ? 1 : 0,
            ...Object.fromEntries(
              Object.entries(this.o.engine.stats?.() ?? {}).map(([k, v]) => [
                `engine${k[0]!.toUpperCase()}${k.slice(1)}`,
                v,
              ]),
            ),
          }),
        );
        return;
      case "/stats":
        res.writeHead(200, { "Content-Type": "application/json" }).end(
          JSON.stringify({
            ...this.counters,
            activeCalls: this.calls.size,
            engine: { name: this.o.engine.name, profile: this.o.engine.profile ?? null, ...this.o.engine.stats?.() },
          }),
        );
        return;
      default:
        res.writeHead(404).end();
    }
  }

  private onConnection(ws: WebSocket): void {
    if (this.draining) {
      this.counters.callsRefused++;
      ws.send(encodeControl({ type: "goaway", reason: "runner instance is shutting down" }));
      ws.close(1013, "try again later");
      return;
    }
    let call: CallEntry | undefined;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      try {
        call = this.onMessage(ws, call, data, isBinary);
      } catch (e) {
        // one call's bad frame (or a bug it trips) never takes the runner and its other calls down
        this.protocolError(ws, "internal", `message could not be handled: ${String(e)}`);
      }
    });
    ws.on("close", () => {
      if (call && call.socket === ws) this.detach(call);
    });
    ws.on("error", () => ws.terminate());
  }

  private onMessage(
    ws: WebSocket,
    call: CallEntry | undefined,
    data: RawData,
    isBinary: boolean,
  ): CallEntry | undefined {
    {
      if (isBinary) {
        if (!call) this.protocolError(ws, "audio_before_start", "audio arrived before start");
        else this.onAudio(ws, call, data as Buffer);
        return call;
      }
      const r = parseEdgeToRunner(data.toString());
      if (!r.ok) {
        this.protocolError(ws, "bad_message", r.message);
        return call;
      }
      const m = r.message;
      switch (m.type) {
        case "start":
          return this.onStart(ws, m);
        case "stop":
          if (call) void this.endCall(call, m.reason);
          return call;
        case "ping":
          ws.send(encodeControl({ type: "pong", id: m.id }));
          return call;
        default:
          return call;
      }
    }
  }

  private onStart(ws: WebSocket, start: RelayStart): CallEntry {
    const existing = this.calls.get(start.callSid);
    if (existing) {
      if (existing.expiry) clearTimeout(existing.expiry);
      existing.expiry = undefined;
      if (existing.socket && existing.socket !== ws) existing.socket.close(1000, "replaced by a newer socket");
      existing.socket = ws;
      this.counters.callsResumed++;
      // blocks the engine already has are acknowledged again, so the edge can forget them
      if (existing.expected > 0) this.ack(existing);
      return existing;
    }
    const send = (text: string) => {
      // the call's current socket (it changes on reconnect); the opening one while the call is set up
      const entry = this.calls.get(start.callSid);
      const s = entry ? entry.socket : ws;
      if (s && s.readyState === s.OPEN) s.send(text);
    };
    const clock = new ArrivalClock();
    const listener = this.o.listenerFor?.(start, send, clock) ?? NOOP_LISTENER;
    const entry: CallEntry = {
      start,
      listener,
      session: this.o.engine.open(start, {
        interim: (r) => listener.interim(r),
        final: (r) => {
          listener.final(r);
          // a final moves the commit point: tell the edge it may forget that audio
          queueMicrotask(() => this.ack(entry));
        },
        failed: (f) => listener.failed(f),
        switched: (x) => listener.switched?.(x),
      }),
      socket: ws,
      expected: start.resumeFromSeq,
      uncommitted: [],
      committedSeq: start.resumeFromSeq - 1,
      expiry: undefined,
      clock,
    };
    if (start.resumeFromSeq > 0) this.counters.callsResumed++;
    this.counters.callsStarted++;
    this.calls.set(start.callSid, entry);
    return entry;
  }

  private onAudio(ws: WebSocket, call: CallEntry, data: Buffer): void {
    const r = decodeAudioFrame(data);
    if (!r.ok) return this.protocolError(ws, "bad_audio", r.message);
    const { seq, pcm, startSample } = r.frame;
    if (seq < call.expected) {
      this.counters.duplicateBlocks++;
    } else {
      if (seq > call.expected) {
        this.counters.gapBlocks += seq - call.expected;
        this.log("warn", "audio blocks missing from the edge", {
          callSid: call.start.callSid,
          expected: call.expected,
          got: seq,
        });
      }
      call.expected = seq + 1;
      this.counters.blocks++;
      this.counters.audioSamples += pcm.length;
      call.uncommitted.push([seq, startSample + pcm.length]);
      call.clock.record(((startSample + pcm.length) * 1000) / r.frame.sampleRateHz, Date.now());
      const t0 = performance.now();
      call.session.feed(pcm, startSample);
      this.metrics.observeFeed(performance.now() - t0);
    }
    this.ack(call);
  }

  /** Acks arrival up to `expected - 1` and commit up to the engine's committed sample. */
  private ack(call: CallEntry): void {
    const committedSample = call.session.committedSample;
    const u = call.uncommitted;
    let n = 0;
    while (n < u.length && (committedSample === undefined || u[n]![1] <= committedSample)) n++;
    if (n > 0) {
      call.committedSeq = u[n - 1]![0];
      u.splice(0, n);
    }
    if (call.socket && call.socket.readyState === call.socket.OPEN) {
      call.socket.send(encodeControl({ type: "ack", seq: call.expected - 1, committedSeq: call.committedSeq }));
    }
  }

  private detach(call: CallEntry): void {
    call.socket = undefined;
    if (this.draining) return;
    call.expiry = setTimeout(() => void this.endCall(call, "edge did not come back"), this.o.resumeGraceMs ?? 60_000);
  }

  private async endCall(call: CallEntry, reason: string): Promise<void> {
    if (this.calls.get(call.start.callSid) !== call) return;
    if (call.expiry) clearTimeout(call.expiry);
    call.expiry = undefined;
    this.counters.callsEnded++;
    this.log("info", "call ended", { callSid: call.start.callSid, reason });
    await call.session.end();
    // everything the engine will say is said: all audio is committed
    if (call.uncommitted.length > 0) call.committedSeq = call.uncommitted[call.uncommitted.length - 1]![0];
    call.uncommitted.length = 0;
    this.ack(call);
    call.listener.close?.();
    this.calls.delete(call.start.callSid);
  }

  private protocolError(ws: WebSocket, code: string, message: string): void {
    this.counters.protocolErrors++;
    this.log("warn", "relay protocol error", { code, error: message });
    ws.send(encodeControl({ type: "error", code, message }));
  }
}
