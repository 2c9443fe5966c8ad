/**
 * The runner's side of the relay (adapter): accepts the edge's persistent WebSocket per call and
 * routes its messages to the call (`RunnerCall`, one engine session per call), whose delivery
 * rules are the shared `RelayReceiver`'s.
 *
 * Who may speak for a call: every upgrade carries a credential the edge signed for one call
 * (`X-Ozen-Relay-Credential`, shared/src/relay/credential.ts). It is checked in the HTTP upgrade,
 * before the socket is accepted and before any engine session: missing, wrong, expired or
 * replayed credentials get HTTP 401 (counted by reason in `relayAuthRefused`). The socket then
 * carries that call and no other, with one `start` (`admitStart`); taking a call over from a
 * live socket is the edge's own reconnect, with that call's credential. Without RELAY_SECRET the
 * server refuses to exist unless told `insecureLocal` (local development, tests that say so).
 *
 * A call's session outlives its socket for `resumeGraceMs`, so an edge that reconnects and
 * replays unacknowledged blocks is deduplicated by seq: the engine sees every block once and in
 * order, and gets the events the call produced meanwhile first. On SIGTERM (`drain`) the runner
 * stops taking calls (a new upgrade is answered HTTP 503 with `Retry-After`, before the
 * handshake, counted in `callsRefused`: the front end or the edge dials another instance; a
 * `start` on a socket accepted before the drain began gets `goaway` and close 1012, no session,
 * counted there too), tells
 * every edge to move (`goaway`), and drops its engine sessions: the edges replay what was not
 * committed to the instance the platform routes them to.
 *
 * Admission by capacity: the runner holds at most `maxCalls` calls (OZEN_MAX_CALLS); the start of
 * a new call beyond it is closed 4007 (`admitCall`, counted in `startsAtCapacity`) and `/readyz`
 * answers 503 while full. Only starts that passed the credential count.
 *
 * `/healthz` and `/readyz` are open; `/stats` and `/metrics` need `Authorization: Bearer
 * RUNNER_METRICS_TOKEN` (without one configured they answer 401 to everyone).
 */
import { STATUS_CODES, createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { RawData, WebSocket } from "ws";
import {
  CallTombstones,
  RELAY_CREDENTIAL_HEADER,
  RELAY_CREDENTIAL_REFUSALS,
  RelayNonceCache,
  admitCall,
  admitSocket,
  admitStart,
  admitStartWhileDraining,
  hasRoom,
  decodeAudioFrame,
  encodeControl,
  equalSecrets,
  newRelayReceiverCounters,
  parseEdgeToRunner,
  verifyRelayCredential,
} from "@ozen/shared";
import type {
  RelayClosing,
  RelayCredentialRefusal,
  RelayEventsLost,
  RelayReceiverCounters,
  RelayStart,
} from "@ozen/shared";
import { callOwnPhrases } from "./call-phrases.js";
import type { Engine } from "./engines/engine.js";
import { runnerLog } from "./log.js";
import { LogLimiter } from "./log-limiter.js";
import { Metrics } from "./metrics.js";
import { PACE_HOLD_MS, RunnerCall } from "./runner-call.js";
import type { ListenerFactory, Log, RunnerCallDeps } from "./runner-call.js";

export type { Log } from "./runner-call.js";

/**
 * A detached call's engine session, ms (OZEN_ENGINE_GRACE_MS's default): long enough for an edge's
 * reconnect after a blip (its first redials come 100, 200, 400 ms after the drop) to land back on
 * it with affinity, short enough that a call that went elsewhere is let go within about a second.
 */
export const DEFAULT_ENGINE_GRACE_MS = 800;

/** How long a detached call waits for its edge, ms: the engine grace's upper bound too. */
export const DEFAULT_RESUME_GRACE_MS = 60_000;

/** The edge's default RELAY_BUFFER_MS: the seq window and the pace's slack unless told otherwise. */
export const DEFAULT_RELAY_BUFFER_MS = 120_000;

export interface RelayServerOptions {
  readonly engine: Engine;
  readonly port: number;
  readonly host?: string;
  /**
   * RELAY_SECRET, shared with the edge: every relay upgrade must carry a credential signed with
   * it for the call it starts. Required unless `insecureLocal`.
   */
  readonly relaySecret?: string;
  /**
   * Takes relay sockets with no credential, for any call (local development and tests that say
   * so; the runner logs it loudly). Ignored when `relaySecret` is set.
   */
  readonly insecureLocal?: boolean;
  /** Bearer token for `/stats` and `/metrics` (RUNNER_METRICS_TOKEN); without it they answer 401. */
  readonly metricsToken?: string;
  /** How long a call whose socket dropped waits for the edge to come back, ms (default 60 s). */
  readonly resumeGraceMs?: number;
  /**
   * How long such a call keeps its engine session, ms (OZEN_ENGINE_GRACE_MS; default `DEFAULT_ENGINE_GRACE_MS`): then
   * the session says its last and closes, its words kept for the rest of `resumeGraceMs`, and a
   * new session opens if the edge comes back. An edge that reconnected to another instance
   * cannot tell this one: this bounds how long its session lives here.
   */
  readonly engineGraceMs?: number;
  /**
   * Calls held at most (OZEN_MAX_CALLS): a new call's start beyond it is closed 4007 and `/readyz`
   * answers 503 while full. Unlimited when unset.
   */
  readonly maxCalls?: number;
  /** The edge's relay buffer, ms (RELAY_BUFFER_MS): bounds a call's seq jumps and its pace. */
  readonly relayBufferMs?: number;
  /** Audio of one call that may wait for its pace before its socket is closed, ms (default `PACE_HOLD_MS`). */
  readonly paceHoldMs?: number;
  /**
   * Wraps the engine listener of each call (the transcript policy and event delivery go here);
   * gets a `send` for relay text frames to the call's current socket.
   */
  readonly listenerFor?: ListenerFactory;
  readonly log?: Log;
  /** How often the rate-limited log lines' counts are summed up in one line each, ms. */
  readonly logSummaryEveryMs?: number;
}

/** The runner's counters (`/stats`, `/metrics`): the relay receivers' (`RelayReceiverCounters`). */
export type RunnerCounters = RelayReceiverCounters;

/** Relay upgrades refused for their credential, by reason (`/stats` `relayAuthRefused`). */
export type RelayAuthRefusals = Record<RelayCredentialRefusal, number>;

/** The outcome of an upgrade's credential check: the call it opens (undefined: auth is off), or why not. */
type UpgradeAuth =
  | { readonly ok: true; readonly callSid: string | undefined }
  | { readonly ok: false; readonly reason: RelayCredentialRefusal; readonly message: string };

/** Per socket: the call its credential opens, and the call it carries once started. */
interface SocketState {
  readonly credentialCallSid: string | undefined;
  call: RunnerCall | undefined;
}

export class RelayServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly calls = new Map<string, RunnerCall>();
  private draining = false;
  readonly metrics = new Metrics();
  readonly counters: RunnerCounters = newRelayReceiverCounters();
  readonly relayAuthRefused: RelayAuthRefusals = Object.fromEntries(
    RELAY_CREDENTIAL_REFUSALS.map((r) => [r, 0]),
  ) as RelayAuthRefusals;
  private readonly log: Log;
  private readonly limiter = new LogLimiter();
  private readonly summaryTimer: ReturnType<typeof setInterval>;
  private readonly nonces = new RelayNonceCache();
  private readonly tombstones = new CallTombstones();
  private readonly callDeps: RunnerCallDeps;

  constructor(private readonly o: RelayServerOptions) {
    if (!o.relaySecret && !o.insecureLocal) {
      throw new Error(
        "the runner needs RELAY_SECRET (the relay's shared secret with the edge); for local development only, " +
          "start it with --insecure-local (OZEN_RELAY_AUTH=off)",
      );
    }
    this.log = o.log ?? runnerLog({ minLevel: "warn" });
    if (!o.relaySecret) {
      this.log("error", "RELAY AUTHENTICATION IS OFF: anyone who reaches this port can start, join and feed any call", {
        how: "--insecure-local / OZEN_RELAY_AUTH=off; for local development only",
      });
    }
    this.callDeps = {
      engine: o.engine,
      listenerFor: o.listenerFor,
      counters: this.counters,
      metrics: this.metrics,
      log: this.log,
      logLimited: (callSid, kind, msg, fields) => this.logLimited(callSid, kind, msg, fields),
      resumeGraceMs: o.resumeGraceMs ?? DEFAULT_RESUME_GRACE_MS,
      engineGraceMs: o.engineGraceMs ?? DEFAULT_ENGINE_GRACE_MS,
      relayBufferMs: o.relayBufferMs ?? DEFAULT_RELAY_BUFFER_MS,
      paceHoldMs: o.paceHoldMs ?? PACE_HOLD_MS,
      onEnded: (call, lost) => this.onCallEnded(call, lost),
    };
    this.http = createServer((req, res) => this.onHttp(req, res));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
    this.http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.summaryTimer = setInterval(() => this.logSummaries(), o.logSummaryEveryMs ?? 60_000);
    this.summaryTimer.unref();
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve) => {
      this.http.listen(this.o.port, this.o.host ?? "127.0.0.1", () =>
        resolve((this.http.address() as AddressInfo).port),
      );
    });
  }

  /** Calls held: each has one engine session open (detached calls within their grace too). */
  get activeCalls(): number {
    return this.calls.size;
  }

  /** Calls this runner holds at most (OZEN_MAX_CALLS; Infinity when unset). */
  get maxCalls(): number {
    return this.o.maxCalls ?? Infinity;
  }

  /** Whether the runner holds as many calls as it may: new calls are refused (4007). */
  get full(): boolean {
    return !hasRoom(this.engineSessions, this.maxCalls);
  }

  /** Calls holding an engine session: what capacity counts (a parked call holds none). */
  get engineSessions(): number {
    let n = 0;
    for (const call of this.calls.values()) if (call.holdsEngine) n++;
    return n;
  }

  /** Whether the runner holds `callSid`, and with a socket (`attached`) or waiting for its edge (`detached`). */
  callState(callSid: string): "attached" | "detached" | undefined {
    const call = this.calls.get(callSid);
    if (!call) return undefined;
    return call.socket ? "attached" : "detached";
  }

  /**
   * SIGTERM: stop taking calls, ask every edge to move (`goaway`: it reconnects, the platform
   * routes it to a live instance, and it closes this socket once the call is taken there), then
   * close. Resolves when every socket is gone, or after `graceMs` (what is left is closed 1012).
   */
  async drain(graceMs = 10_000): Promise<void> {
    this.draining = true;
    for (const call of this.calls.values()) call.drain();
    const deadline = Date.now() + graceMs;
    while (this.wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const ws of this.wss.clients) ws.close(1012, "service restart");
    await this.close();
  }

  async close(): Promise<void> {
    clearInterval(this.summaryTimer);
    this.logSummaries();
    for (const ws of this.wss.clients) ws.terminate();
    for (const call of this.calls.values()) call.close();
    this.calls.clear();
    await new Promise<void>((r) => this.wss.close(() => r()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://runner").pathname;
    switch (path) {
      case "/healthz":
        res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
        return;
      case "/readyz": {
        // full: the front end (a health-checking balancer) sends new calls elsewhere
        const why = this.draining ? "draining" : this.full ? "full" : undefined;
        res.writeHead(why ? 503 : 200, { "Content-Type": "text/plain" }).end(`${why ?? "ready"}\n`);
        return;
      }
      case "/metrics":
        if (!this.metricsAllowed(req, res)) return;
        void this.metrics
          .render(
            {
              ...this.counters,
              activeCalls: this.calls.size,
              openSockets: this.wss.clients.size,
              draining: this.draining ? 1 : 0,
              ...Object.fromEntries(
                Object.entries(this.o.engine.stats?.() ?? {}).map(([k, v]) => [
                  `engine${k[0]!.toUpperCase()}${k.slice(1)}`,
                  v,
                ]),
              ),
            },
            { relayAuthRefused: { label: "reason", values: this.relayAuthRefused } },
          )
          .then((text) => res.writeHead(200, { "Content-Type": this.metrics.contentType }).end(text));
        return;
      case "/stats":
        if (!this.metricsAllowed(req, res)) return;
        res.writeHead(200, { "Content-Type": "application/json" }).end(
          JSON.stringify({
            ...this.counters,
            relayAuth: this.o.relaySecret ? "on" : "off",
            relayAuthRefused: this.relayAuthRefused,
            activeCalls: this.calls.size,
            maxCalls: Number.isFinite(this.maxCalls) ? this.maxCalls : null,
            openSockets: this.wss.clients.size,
            engine: { name: this.o.engine.name, profile: this.o.engine.profile ?? null, ...this.o.engine.stats?.() },
          }),
        );
        return;
      default:
        res.writeHead(404).end();
    }
  }

  /** `/stats` and `/metrics`: the bearer token must be RUNNER_METRICS_TOKEN; else 401 (answered here). */
  private metricsAllowed(req: IncomingMessage, res: ServerResponse): boolean {
    const token = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    if (equalSecrets(token, this.o.metricsToken ?? "")) return true;
    res
      .writeHead(401, { "Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="ozen-runner"' })
      .end(this.o.metricsToken ? "a bearer token is required\n" : "RUNNER_METRICS_TOKEN is not configured\n");
    return false;
  }

  // ---- the upgrade: the credential, before any socket or session ----

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    // the cheap check first: a draining runner refuses before it verifies anything (the front end
    // may send the very same request, credential and all, to another instance, so its nonce is
    // not spent here); a request that carries no credential at all is no edge's: 401 regardless
    if (this.hasCredentialHeader(req) && this.refuseIfDraining(socket)) return;
    void this.authenticate(req).then((auth) => {
      if (!auth.ok) {
        this.relayAuthRefused[auth.reason]++;
        this.logLimited("", `auth_${auth.reason}`, "relay upgrade refused: credential", {
          reason: auth.reason,
          error: auth.message,
        });
        refuseUpgrade(socket, 401, `relay credential refused (${auth.reason}): ${auth.message}`, {
          "WWW-Authenticate": 'OzenRelay realm="ozen-relay"',
        });
        return;
      }
      if (this.refuseIfDraining(socket)) return; // it began to drain while the credential was checked
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, auth.callSid));
    });
  }

  /** Whether `req` has one non-empty credential header (always true with relay authentication off). */
  private hasCredentialHeader(req: IncomingMessage): boolean {
    if (!this.o.relaySecret) return true;
    const header = req.headers[RELAY_CREDENTIAL_HEADER.toLowerCase()];
    return typeof header === "string" && header !== "";
  }

  /**
   * While draining: answers the upgrade 503 with `Retry-After` (counted in `callsRefused`), before
   * the handshake, so the front end or the edge dials another instance; returns whether it did.
   */
  private refuseIfDraining(socket: Duplex): boolean {
    const refusal = admitSocket(this.draining, this.counters);
    if (!refusal) return false;
    this.logLimited("", `refused_${refusal.reason}`, "relay upgrade refused: the runner is draining", {
      status: refusal.status,
      retryAfterS: refusal.retryAfterS,
    });
    refuseUpgrade(socket, refusal.status, refusal.message, { "Retry-After": String(refusal.retryAfterS) });
    return true;
  }

  private async authenticate(req: IncomingMessage): Promise<UpgradeAuth> {
    const secret = this.o.relaySecret;
    if (!secret) return { ok: true, callSid: undefined };
    const header = req.headers[RELAY_CREDENTIAL_HEADER.toLowerCase()];
    if (Array.isArray(header)) return { ok: false, reason: "malformed", message: "more than one credential header" };
    const nowMs = Date.now();
    const check = await verifyRelayCredential(secret, header, nowMs);
    if (!check.ok) return check;
    const replay = this.nonces.admit(check.credential, Date.now());
    if (replay === "replayed") return { ok: false, reason: "replayed", message: "this credential was used already" };
    if (replay === "full") {
      return { ok: false, reason: "replay_cache_full", message: "too many live credentials; try again shortly" };
    }
    return { ok: true, callSid: check.credential.callSid };
  }

  // ---- sockets ----

  private onConnection(ws: WebSocket, credentialCallSid: string | undefined): void {
    const state: SocketState = { credentialCallSid, call: undefined };
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== ws.OPEN) return; // closing: what was in flight is not taken
      try {
        this.onMessage(ws, state, data, isBinary);
      } catch (e) {
        // one call's bad frame (or a bug it trips) never takes the runner and its other calls down
        this.protocolError(ws, state, "internal", `message could not be handled: ${String(e)}`);
      }
    });
    ws.on("close", () => state.call?.detach(ws));
    ws.on("error", () => ws.terminate());
  }

  private onMessage(ws: WebSocket, state: SocketState, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      const call = state.call;
      if (!call) {
        this.protocolError(ws, state, "audio_before_start", "audio arrived before start");
        return;
      }
      const r = decodeAudioFrame(data as Buffer);
      if (!r.ok) {
        this.protocolError(ws, state, "bad_audio", r.message);
        return;
      }
      if (r.frame.callId !== call.start.callSid) {
        this.protocolError(ws, state, "bad_audio", "audio frame names another call than this socket's");
        return;
      }
      const problem = call.frameProblem(r.frame);
      if (problem) {
        this.protocolError(ws, state, "bad_audio", problem);
        return;
      }
      const closing = call.audio(r.frame, Date.now());
      if (closing) this.closeSocket(ws, state, closing);
      return;
    }
    const r = parseEdgeToRunner(data.toString());
    if (!r.ok) {
      this.protocolError(ws, state, "bad_message", r.message);
      return;
    }
    const m = r.message;
    switch (m.type) {
      case "start":
        this.onStart(ws, state, m);
        return;
      case "stop":
        if (state.call) void state.call.end(m.reason);
        return;
      case "ping":
        ws.send(encodeControl({ type: "pong", id: m.id }));
        return;
      default:
        return;
    }
  }

  /** A start on `ws`: refused, or resumes the call the runner holds, or opens a new one. */
  private onStart(ws: WebSocket, state: SocketState, start: RelayStart): void {
    const refusal = admitStart(start, state.credentialCallSid, state.call !== undefined, this.counters);
    if (refusal) {
      this.closeSocket(ws, state, refusal);
      return;
    }
    // accepted before the drain began, started after: sent elsewhere like an upgrade now would be
    const draining = admitStartWhileDraining(this.draining, this.counters);
    if (draining) {
      this.closeSocket(ws, state, draining);
      return;
    }
    const existing = this.calls.get(start.callSid);
    if (existing) {
      state.call = existing;
      existing.resume(ws);
      return;
    }
    // a new call: only now, past the credential and admitStart, does it count against capacity
    const full = admitCall(this.engineSessions, this.maxCalls, this.counters);
    if (full) {
      this.closeSocket(ws, state, full);
      return;
    }
    const phrases = callOwnPhrases(start);
    if (!phrases.ok) {
      this.logLimited(
        start.callSid,
        "phrases_refused",
        "the call's phrase hints are refused; it goes on without them",
        {
          error: phrases.message,
        },
      );
    }
    const lost = this.tombstones.take(start.callSid, Date.now());
    if (lost !== undefined) ws.send(lost); // first: what the edge's close-out records as lost
    const call = new RunnerCall(start, ws, this.callDeps);
    state.call = call;
    this.calls.set(start.callSid, call);
  }

  private onCallEnded(call: RunnerCall, lost: RelayEventsLost): void {
    const callSid = call.start.callSid;
    if (this.calls.get(callSid) === call) this.calls.delete(callSid);
    if (lost.events > 0) {
      this.tombstones.remember(callSid, lost, Date.now());
      this.log("warn", "call ended with transcript events no edge received", { callSid, ...lost });
    }
    this.logSummaries(callSid);
  }

  /** Sends the socket its last word and closes it (the call it carries, if any, is detached). */
  private closeSocket(ws: WebSocket, state: SocketState, closing: RelayClosing): void {
    this.logLimited(state.call?.start.callSid ?? "", `close_${closing.code}`, "relay socket closed: refused", {
      close: closing.code,
      reason: closing.reason,
    });
    ws.send(closing.text);
    ws.close(closing.code, closing.reason);
  }

  private protocolError(ws: WebSocket, state: SocketState, code: string, message: string): void {
    this.counters.protocolErrors++;
    this.logLimited(state.call?.start.callSid ?? "", code, "relay protocol error", { code, error: message });
    ws.send(encodeControl({ type: "error", code, message }));
  }

  // ---- rate-limited logs ----

  private logLimited(callSid: string, kind: string, msg: string, fields?: Record<string, unknown>): void {
    if (this.limiter.hit(callSid, kind)) {
      this.log("warn", msg, {
        ...(callSid ? { callSid } : {}),
        kind,
        ...fields,
        note: "first of its kind; more are counted",
      });
    }
  }

  /** One line per (call, kind) with occurrences not logged; `callSid`: that call's, forgotten (it ended). */
  private logSummaries(callSid?: string): void {
    const flushed = callSid === undefined ? this.limiter.flush() : this.limiter.flush({ callSid, forget: true });
    for (const s of flushed) {
      this.log("warn", "repeated relay problems (not logged one by one)", {
        ...(s.callSid ? { callSid: s.callSid } : {}),
        kind: s.kind,
        count: s.suppressed,
      });
    }
  }
}

/**
 * Answers an upgrade with a plain HTTP error (`headers` added) and closes the connection: no
 * socket, no session.
 */
function refuseUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string>): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  socket.once("finish", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join("") +
      "\r\n" +
      body,
  );
}
