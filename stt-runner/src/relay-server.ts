/**
 * The runner's side of the relay (adapter): accepts the edge's persistent WebSocket per call and
 * routes its messages to the call (`RunnerCall`, one engine session per call), whose delivery
 * rules are the shared `RelayReceiver`'s.
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
import {
  admitSocket,
  decodeAudioFrame,
  encodeControl,
  newRelayReceiverCounters,
  parseEdgeToRunner,
} from "@ozen/shared";
import type { RelayReceiverCounters, RelayStart } from "@ozen/shared";
import type { Engine } from "./engines/engine.js";
import { runnerLog } from "./log.js";
import { Metrics } from "./metrics.js";
import { RunnerCall } from "./runner-call.js";
import type { ListenerFactory, Log, RunnerCallDeps } from "./runner-call.js";

export type { Log } from "./runner-call.js";

export interface RelayServerOptions {
  readonly engine: Engine;
  readonly port: number;
  readonly host?: string;
  /** How long a call whose socket dropped waits for the edge to come back, ms. */
  readonly resumeGraceMs?: number;
  /**
   * Wraps the engine listener of each call (the transcript policy and event delivery go
   * here); gets a `send` for relay text frames to the call's current socket.
   */
  readonly listenerFor?: ListenerFactory;
  readonly log?: Log;
}

/** The runner's counters (`/stats`, `/metrics`): the relay receivers' (`RelayReceiverCounters`). */
export type RunnerCounters = RelayReceiverCounters;

export class RelayServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly calls = new Map<string, RunnerCall>();
  private draining = false;
  readonly metrics = new Metrics();
  readonly counters: RunnerCounters = newRelayReceiverCounters();
  private readonly log: Log;
  private readonly callDeps: RunnerCallDeps;

  constructor(private readonly o: RelayServerOptions) {
    this.log = o.log ?? runnerLog({ minLevel: "warn" });
    this.callDeps = {
      engine: o.engine,
      listenerFor: o.listenerFor,
      counters: this.counters,
      metrics: this.metrics,
      log: this.log,
      resumeGraceMs: o.resumeGraceMs ?? 60_000,
      onEnded: (call) => {
        if (this.calls.get(call.start.callSid) === call) this.calls.delete(call.start.callSid);
      },
    };
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
    for (const call of this.calls.values()) call.drain();
    const deadline = Date.now() + graceMs;
    while (this.wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.close();
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    for (const call of this.calls.values()) call.close();
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
        void this.metrics
          .render({
            ...this.counters,
            activeCalls: this.calls.size,
            draining: this.draining ? 1 : 0,
            ...Object.fromEntries(
              Object.entries(this.o.engine.stats?.() ?? {}).map(([k, v]) => [
                `engine${k[0]!.toUpperCase()}${k.slice(1)}`,
                v,
              ]),
            ),
          })
          .then((text) => res.writeHead(200, { "Content-Type": this.metrics.contentType }).end(text));
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
    const refusal = admitSocket(this.draining, this.counters);
    if (refusal) {
      ws.send(refusal.text);
      ws.close(refusal.code, refusal.reason);
      return;
    }
    let call: RunnerCall | undefined;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      try {
        call = this.onMessage(ws, call, data, isBinary);
      } catch (e) {
        // one call's bad frame (or a bug it trips) never takes the runner and its other calls down
        this.protocolError(ws, "internal", `message could not be handled: ${String(e)}`);
      }
    });
    ws.on("close", () => call?.detach(ws));
    ws.on("error", () => ws.terminate());
  }

  private onMessage(
    ws: WebSocket,
    call: RunnerCall | undefined,
    data: RawData,
    isBinary: boolean,
  ): RunnerCall | undefined {
    if (isBinary) {
      if (!call) {
        this.protocolError(ws, "audio_before_start", "audio arrived before start");
        return call;
      }
      const r = decodeAudioFrame(data as Buffer);
      if (!r.ok) this.protocolError(ws, "bad_audio", r.message);
      else call.audio(r.frame);
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
        if (call) void call.end(m.reason);
        return call;
      case "ping":
        ws.send(encodeControl({ type: "pong", id: m.id }));
        return call;
      default:
        return call;
    }
  }

  /** A start on `ws`: resumes the call the runner holds, or opens a new one. */
  private onStart(ws: WebSocket, start: RelayStart): RunnerCall {
    const existing = this.calls.get(start.callSid);
    if (existing) {
      existing.resume(ws);
      return existing;
    }
    const call = new RunnerCall(start, ws, this.callDeps);
    this.calls.set(start.callSid, call);
    return call;
  }

  private protocolError(ws: WebSocket, code: string, message: string): void {
    this.counters.protocolErrors++;
    this.log("warn", "relay protocol error", { code, error: message });
    ws.send(encodeControl({ type: "error", code, message }));
  }
}
