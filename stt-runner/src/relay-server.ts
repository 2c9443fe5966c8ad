/**
 * The runner's side of the relay (adapter): accepts the edge's persistent WebSocket per call,
 * acknowledges audio, and drives one engine session per call.
 *
 * A call's session outlives its socket for `resumeGraceMs`, so an edge that reconnects and
 * replays unacknowledged blocks is deduplicated by seq: the engine sees every block exactly
 * once and in order.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import type { RawData, WebSocket } from "ws";
import { decodeAudioFrame, encodeControl, parseEdgeToRunner } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import type { Engine, EngineSession } from "./engines/engine.js";

export interface RelayServerOptions {
  readonly engine: Engine;
  readonly port: number;
  readonly host?: string;
  /** How long a call whose socket dropped waits for the edge to come back. */
  readonly resumeGraceMs?: number;
  readonly log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunnerCounters {
  callsStarted: number;
  callsResumed: number;
  callsEnded: number;
  blocks: number;
  duplicateBlocks: number;
  gapBlocks: number;
  audioSamples: number;
  protocolErrors: number;
}

interface CallEntry {
  readonly start: RelayStart;
  readonly session: EngineSession;
  socket: WebSocket | undefined;
  /** The next seq the engine should see. */
  expected: number;
  expiry: ReturnType<typeof setTimeout> | undefined;
}

export class RelayServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly calls = new Map<string, CallEntry>();
  readonly counters: RunnerCounters = {
    callsStarted: 0,
    callsResumed: 0,
    callsEnded: 0,
    blocks: 0,
    duplicateBlocks: 0,
    gapBlocks: 0,
    audioSamples: 0,
    protocolErrors: 0,
  };
  private readonly log: NonNullable<RelayServerOptions["log"]>;

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

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    for (const c of this.calls.values()) if (c.expiry) clearTimeout(c.expiry);
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === "/healthz" || req.url === "/readyz") {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
      return;
    }
    if (req.url === "/stats") {
      res
        .writeHead(200, { "Content-Type": "application/json" })
        .end(JSON.stringify({ ...this.counters, activeCalls: this.calls.size }));
      return;
    }
    res.writeHead(404).end();
  }

  private onConnection(ws: WebSocket): void {
    let call: CallEntry | undefined;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        if (!call) return this.protocolError(ws, "audio_before_start", "audio arrived before start");
        this.onAudio(ws, call, data as Buffer);
        return;
      }
      const r = parseEdgeToRunner(data.toString());
      if (!r.ok) return this.protocolError(ws, "bad_message", r.message);
      const m = r.message;
      switch (m.type) {
        case "start":
          call = this.onStart(ws, m);
          break;
        case "stop":
          if (call) void this.endCall(call, m.reason);
          break;
        case "ping":
          ws.send(encodeControl({ type: "pong", id: m.id }));
          break;
        case "pong":
        case "error":
          break;
      }
    });
    ws.on("close", () => {
      if (call && call.socket === ws) this.detach(call);
    });
    ws.on("error", () => ws.terminate());
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
      if (existing.expected > 0) ws.send(encodeControl({ type: "ack", seq: existing.expected - 1 }));
      return existing;
    }
    const entry: CallEntry = {
      start,
      session: this.o.engine.open(start),
      socket: ws,
      expected: start.resumeFromSeq,
      expiry: undefined,
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
      call.session.feed(pcm, startSample);
    }
    ws.send(encodeControl({ type: "ack", seq: call.expected - 1 }));
  }

  private detach(call: CallEntry): void {
    call.socket = undefined;
    call.expiry = setTimeout(() => void this.endCall(call, "edge did not come back"), this.o.resumeGraceMs ?? 60_000);
  }

  private async endCall(call: CallEntry, reason: string): Promise<void> {
    if (this.calls.get(call.start.callSid) !== call) return;
    this.calls.delete(call.start.callSid);
    if (call.expiry) clearTimeout(call.expiry);
    this.counters.callsEnded++;
    this.log("info", "call ended", { callSid: call.start.callSid, reason });
    await call.session.end();
  }

  private protocolError(ws: WebSocket, code: string, message: string): void {
    this.counters.protocolErrors++;
    this.log("warn", "relay protocol error", { code, error: message });
    ws.send(encodeControl({ type: "error", code, message }));
  }
}
