/**
 * CallSession: one Durable Object per call (adapter). It owns the call's Twilio socket and its
 * lifecycle (start, stream, end), and wires the parts: the ingest rules (`MediaIngest`,
 * shared), the relay frames they decode into (`relay-frames.ts`), the call's one relay link to
 * the runner, what goes back to Twilio (`outbound.ts`), the stats (`stats-recorder.ts`), the
 * transcript event stream and the call's record.
 *
 * Hot path: the message handler parses, decodes base64 + mu-law straight into the block that
 * will be sent (no per-frame allocation) and hands full blocks to the relay link. Nothing on
 * that road awaits the network.
 */
import { MediaIngest, PHRASES_PARAMETER } from "@ozen/shared";
import type { MediaMessage, RunnerToEdge, StartMessage } from "@ozen/shared";
import { CALL_TOKEN_PARAMETER, checkCallToken } from "./call-token.js";
import { callPhrasesOf } from "./phrase-config.js";
import { callObjectRoute } from "./call-object-route.js";
import { StreamAdmission } from "./stream-admission.js";
import { configFor } from "../config.js";
import type { EdgeConfig } from "../config.js";
import { CallLedger } from "../records/ledger.js";
import { accountHub } from "../events/account-hub.js";
import { CallEventStream } from "../events/call-events.js";
import { DEFAULT_ACCOUNT } from "../events/subscription-config.js";
import { TwilioOutbound } from "./outbound.js";
import { RelayFrameSink } from "./relay-frames.js";
import type { SealedBlock } from "./relay-frames.js";
import { RELAY_SAMPLE_RATE_HZ, relayStartOf, runnerLink } from "./runner-link.js";
import { StreamingWatch, closeOutCall } from "./close-out.js";
import type { RelayLink } from "./relay-link.js";
import { CallStatsRecorder } from "./stats-recorder.js";
import { CallLog } from "./call-log.js";
import { CallMetricsReporter, callMetricsReport } from "./metrics-report.js";
import { CallVoice } from "./playback.js";
import { ControlDesk } from "../events/control.js";
import { CONTROL_HEADER } from "../events/subscriptions.js";
import type { Env } from "../env.js";

export type { CallState, CallStats } from "./stats.js";

/** How long the link keeps trying to hand the runner the end of a call after the caller hung up. */
const STOP_GRACE_MS = 60_000;

/** What a media frame handler may do with the call: name it, and relay a frame as block `seq`. */
export interface FrameOut {
  callSid(): string;
  relay(seq: number, frame: ArrayBuffer): void;
}

export interface CallSessionOptions {
  /** Replaces the block path for media frames: the benchmark's naive baseline (`naive-session.ts`). */
  readonly perFrame?: (m: MediaMessage, out: FrameOut) => void;
}

export class CallSession implements DurableObject {
  private readonly config: EdgeConfig;
  private readonly ingest: MediaIngest;
  private readonly frames: RelayFrameSink;
  private readonly outbound: TwilioOutbound;
  private readonly stats: CallStatsRecorder;
  /** Transcript events to the call's subscribers and the account's hub (`call-events.ts`). */
  private readonly events: CallEventStream;
  /** The call's record, its D1 copy and its webhooks (`ledger.ts`). */
  private readonly ledger: CallLedger;
  /** Whether the call has streamed (and ended), in the object's storage: one stream per call, ever. */
  private readonly admission: StreamAdmission;
  private readonly log = new CallLog(() => this.stats.callSid);
  /** The call's reports to the edge's metrics (`metrics-report.ts`). */
  private readonly report: CallMetricsReporter;
  /** The agent's voice: its audio to Twilio, barge-in, playback events (`playback.ts`). */
  private readonly voice: CallVoice;
  /** Which subscriber socket controls the voice, and its messages (`control.ts`). */
  private readonly control: ControlDesk;
  /** The streaming marker and its alarm: a restart under the call closes it out (`close-out.ts`). */
  private readonly watch: StreamingWatch;
  private twilio: WebSocket | undefined;
  /** The `start`'s token check and admission, once `start` came: resolves true when admitted. */
  private admitting: Promise<boolean> | undefined;
  private relay: RelayLink | undefined;

  constructor(
    private readonly ctx: DurableObjectState,
    env: Env,
    private readonly options: CallSessionOptions = {},
  ) {
    this.config = configFor(env);
    this.ledger = new CallLedger(ctx.storage, env.DB, this.config.delivery, (...line) => this.log.line(...line));
    this.admission = new StreamAdmission(ctx.storage.sql);
    this.watch = new StreamingWatch(ctx.storage);
    this.frames = new RelayFrameSink(() => this.stats.callSid);
    this.ingest = new MediaIngest({
      blockSamples: (this.config.blockMs * RELAY_SAMPLE_RATE_HZ) / 1000,
      sink: this.frames,
    });
    this.outbound = new TwilioOutbound({ ...this.config, send: (text) => this.sendToTwilio(text) });
    this.events = new CallEventStream({
      limits: this.config.subscriptions,
      hub: (batch) =>
        accountHub(env, DEFAULT_ACCOUNT).fetch("https://hub/publish", {
          method: "POST",
          body: JSON.stringify({ callSid: this.stats.callSid, events: batch }),
        }),
      log: (level, key, msg, fields) => this.log.once(`events:${key}`, level, msg, fields),
      // the record gets the call's one transcript (edge utterance ids, no runner-restart repeats)
      onDelivered: (e) => this.ledger.onEvent(e),
      // ids the record already holds are never given again, even by an object that restarted
      firstUtteranceN: () => this.ledger.nextUtteranceN(),
    });
    this.voice = new CallVoice({
      config: this.config.voice,
      canPlay: this.outbound.canPlay,
      sendClear: () => void this.outbound.clear(),
      send: (text) => this.sendToTwilio(text),
      streamSid: () => this.outbound.streamSid,
      callSid: () => this.stats.callSid,
      audioMs: () => this.ingest.audioMs,
      streaming: () => this.stats.state === "streaming" && this.twilio !== undefined,
      emit: (e) => this.events.fromEdge(this.stats.callSid, e),
      log: (...line) => this.log.line(...line),
    });
    this.control = new ControlDesk(this.voice, () => this.bargeIn("agent"));
    this.stats = new CallStatsRecorder(ctx.storage, this.config.blockMs, () => ({
      ingest: this.ingest.counters(),
      outbound: this.outbound.counters(),
      relay: this.relay,
      eventStream: this.events.snapshot(),
      voice: { ...this.voice.stats(), control: this.control.counters },
    }));
    this.report = new CallMetricsReporter(
      () => env.EDGE_METRICS.get(env.EDGE_METRICS.idFromName("global")),
      () => {
        // after an eviction the object is "waiting" again, but its records may still be delivering
        const callSid = this.stats.state === "waiting" ? this.ledger.callSid() : this.stats.callSid;
        return callSid === undefined
          ? undefined
          : callMetricsReport({
              callSid,
              streaming: this.stats.state === "streaming",
              bad: this.ingest.counters().bad,
              relay: this.relay?.stats,
              subscribers: this.events.snapshot().subscribers,
              backlog: this.ledger.backlog(),
            });
      },
    );
  }

  /** The Worker's requests, by the operation it names (`call-object-route.ts`). */
  async fetch(request: Request): Promise<Response> {
    const route = callObjectRoute(request);
    if (!route) return new Response("not a call object operation", { status: 404 });
    switch (route.op) {
      case "stats":
        return Response.json(await this.stats.read(this.holdsCall));
      case "record":
        return Response.json(this.ledger.view());
      case "events":
        if (request.headers.get("Upgrade")?.toLowerCase() === "websocket")
          return this.events.subscribe(route.url, this.control.socket(request.headers.get(CONTROL_HEADER) === "1"));
        return Response.json({ events: this.events.recent() });
      case "play":
        if (request.method !== "POST") return new Response("play is a POST", { status: 405 });
        return this.voice.playHttp(request, route.url);
      case "clear": {
        if (request.method !== "POST") return new Response("clear is a POST", { status: 405 });
        const sent = this.bargeIn("api");
        return Response.json({ cleared: sent }, { status: sent ? 200 : 409 });
      }
      case "stream":
        return this.acceptStream(request, route.callSid);
    }
  }

  /**
   * Twilio's Media Streams upgrade (its signature checked by the Worker). One stream per call:
   * refused (409) while one is open, and for good once one was admitted (kept in storage, so
   * after the call ended, an eviction or a restart too: Twilio never reconnects a stream).
   */
  private acceptStream(request: Request, callSid: string): Response {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    if (this.twilio || this.stats.state === "ended" || this.admission.streamed) {
      return new Response("this call already has (or had) a stream", { status: 409 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // the runtime calls webSocketMessage/Close/Error below (see there why not accept() and listeners)
    this.ctx.acceptWebSocket(server);
    this.twilio = server;
    this.stats.callSid = callSid;
    if (!this.config.verifySignatures)
      this.log.once("insecure", "warn", "TWILIO_SIGNATURE=off: this call is not authenticated");
    return new Response(null, {
      status: 101,
      webSocket: client,
      headers: { "Sec-WebSocket-Protocol": "audio.twilio.com" },
    });
  }

  // The Twilio socket is accepted with `ctx.acceptWebSocket` (the hibernation API), so workerd
  // calls these methods per message. With `accept()` and listeners it dispatches a MessageEvent per
  // message instead, whose native memory comes back only with a major GC, which the object's small
  // JS heap rarely triggers: at 50 messages a second per call, workerd's RSS grew ~1 KB a message,
  // round after round, until something forced a collection (`ozen bench soak`,
  // docs/benchmarks.md). The object does not hibernate during a call: Twilio's media keeps
  // it busy, and the relay link's socket keeps it in memory.

  /** A message on the Twilio socket. */
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    if (ws === this.twilio) this.onTwilioMessage(message);
  }

  /** Twilio closed its socket (with `stop` before it, or without). */
  webSocketClose(ws: WebSocket, code: number): void {
    if (ws === this.twilio) void this.end(`twilio closed the socket (${code})`, true);
  }

  webSocketError(ws: WebSocket): void {
    if (ws === this.twilio) void this.end("twilio socket error", true);
  }

  /**
   * The object's one alarm (`alarms.ts`): the streaming watch (a fresh object whose storage says
   * the call was streaming closes it out, `close-out.ts`), then D1 writes and webhook retries.
   */
  async alarm(): Promise<void> {
    const marker = await this.watch.alarm(Date.now(), this.holdsCall);
    if (marker) {
      await closeOutCall(marker, {
        config: this.config,
        events: this.events,
        ledger: this.ledger,
        stats: this.stats,
        watch: this.watch,
        streamEnded: (nowMs) => this.admission.ended(nowMs),
        log: (...line) => this.log.line(...line),
      });
    }
    await this.ledger.alarm();
    this.report.now(Date.now());
  }

  /** Whether this object (not only its storage) has the call: its stats are live. */
  private get holdsCall(): boolean {
    return this.stats.state !== "waiting" || this.twilio !== undefined;
  }

  // ---- Twilio side ----

  private onTwilioMessage(data: string | ArrayBuffer): void {
    const t0 = performance.now();
    try {
      const e = this.ingest.receive(data);
      switch (e.event) {
        case "media":
          this.takeAudio(e);
          break;
        case "start":
          void this.onStart(e);
          break;
        case "stop":
          void this.end("twilio stop", false);
          break;
        case "mark":
          if (!this.voice.onMarkEcho(e.mark.name)) this.outbound.onMarkEcho(e.mark.name);
          break;
        case "dtmf":
          this.events.fromEdge(this.stats.callSid, {
            v: 1,
            type: "dtmf",
            callSid: this.stats.callSid,
            wallMs: Date.now(),
            digit: e.dtmf.digit,
            audioMs: this.ingest.audioMs,
          });
          break;
        case "close":
          this.closeTwilio(e.code, e.reason);
          break;
        default:
          break;
      }
      this.logNotices();
    } finally {
      this.stats.handled(performance.now() - t0);
    }
  }

  /** A media frame's audio into blocks (timed apart), then the blocks it sealed to the runner. */
  private takeAudio(m: MediaMessage): void {
    const nowMs = Date.now();
    const t0 = performance.now();
    if (this.options.perFrame) this.options.perFrame(m, this.frameOut);
    else this.ingest.takeAudio(m, nowMs);
    this.voice.audioArrived(this.ingest.audioMs, nowMs);
    this.stats.decoded(performance.now() - t0);
    this.relaySealed();
    this.stats.persistEvery(nowMs);
    this.report.every(nowMs);
  }

  private relaySealed(): void {
    this.frames.drain(this.relaySealedBlock);
  }

  // made once: the hot path allocates no closure per frame
  private readonly relaySealedBlock = (b: SealedBlock): void => {
    if (b.full) this.stats.fullBlock(Date.now(), b.openedAtMs, this.relay?.connected ?? false);
    this.relayBlock(b.seq, b.frame);
  };

  private relayBlock(seq: number, frame: ArrayBuffer): void {
    this.stats.blocksMade++;
    this.relay?.send(seq, frame);
    this.watch.progress(seq + 1, Date.now());
    if (this.config.ingestAck === "block") this.outbound.ackBlock(this.ingest.lastMediaSequence);
  }

  private readonly frameOut: FrameOut = {
    callSid: () => this.stats.callSid,
    relay: (seq, frame) => this.relayBlock(seq, frame),
  };

  private async onStart(m: StartMessage): Promise<void> {
    const t0 = Date.now();
    this.stats.streamSid = this.outbound.streamSid = m.streamSid;
    this.stats.startedAtMs = t0;
    const { callSid, customParameters } = m.start;
    if (callSid !== this.stats.callSid)
      this.log.once("callsid", "warn", "start.callSid differs from the stream URL's; using the URL's");
    // the greeting first: it is what the caller hears, and it needs nothing from the network
    // (an account's own greeting file is fetched once per isolate, then played as an utterance)
    const greetingUrl =
      this.config.greeting === "asset" ? this.config.voice.greetingUrls.get(m.start.accountSid) : undefined;
    if (!greetingUrl) this.outbound.playGreeting(t0);
    const { [CALL_TOKEN_PARAMETER]: token, ...params } = customParameters;
    // the account's hints and the stream's own; they reach the runner only once the token is checked
    const hints = callPhrasesOf(this.config.phrases, m.start.accountSid, params[PHRASES_PARAMETER]);
    if (hints.refused !== undefined) this.ingest.refusePhrases(hints.refused);
    // audio is taken from now on and held in the link until the token is checked
    const relayStart = relayStartOf(this.config, this.stats.callSid, m, params, hints.phrases);
    const relay = (this.relay = runnerLink(this.config, relayStart, {
      onControl: (c) => this.onRunnerControl(c),
      onBlockDropped: (seq) =>
        this.log.once("relay_full", "error", "relay buffer full while the runner is away: oldest audio dropped", {
          seq,
        }),
      onAcked: (b) => this.frames.recycle(b.frame),
      onInvalidEvent: (error) => this.events.invalidEvent(error),
      log: (...line) => this.log.line(...line),
    }));
    this.stats.state = "streaming";
    this.admitting = this.admit(relay, token);
    if (!(await this.admitting)) return;
    if (greetingUrl) void this.voice.playGreetingFile(greetingUrl).then((ok) => ok || this.outbound.playGreeting(t0));
    this.ledger.begin({
      callSid: this.stats.callSid,
      accountSid: m.start.accountSid,
      streamSid: m.streamSid,
      startedAtMs: t0,
    });
    this.watch.begin(relayStart, t0);
    relay.connect();
    this.stats.persist(Date.now());
  }

  /**
   * Checks the stream's `ozen_token` (expiry, MAC, this call) and admits the call's one stream:
   * "this call has streamed" is written (with the token's nonce) before any of its audio leaves
   * the object. False when the stream is refused.
   */
  private async admit(relay: RelayLink, token: string | undefined): Promise<boolean> {
    const check = this.config.verifySignatures
      ? await checkCallToken(this.config.callTokenSecret, this.stats.callSid, token, Date.now())
      : undefined;
    if (check && !check.ok) {
      this.refuseStart(relay, check.message);
      return false;
    }
    if (!this.admission.admit(Date.now(), check?.nonce)) {
      this.refuseStart(relay, "this call has streamed before");
      return false;
    }
    return true;
  }

  /** The stream's `start` is refused: nothing it sent reaches the runner, and the socket closes 1008. */
  private refuseStart(relay: RelayLink, why: string): void {
    const close = this.ingest.rejectStart(why);
    this.logNotices();
    relay.close(1008, "bad call token");
    this.relay = undefined;
    this.closeTwilio(close.code, close.reason);
  }

  /** A clear (the API, the agent, the runner): Twilio drops the agent's audio, the edge its queue. */
  private bargeIn(by: string): boolean {
    // an ended call's socket is gone (or going): nothing to clear, and the caller must hear so
    if (this.stats.state !== "streaming" || !this.twilio || !this.voice.clear("clear")) return false;
    this.log.line("info", "barge-in: clear sent", { by, pendingMarks: this.outbound.pendingMarkCount });
    return true;
  }

  private onRunnerControl(m: RunnerToEdge): void {
    switch (m.type) {
      case "clear":
        this.bargeIn("runner");
        break;
      case "event":
        // counted, then into the call's event stream
        this.stats.countEvent(m.event.type);
        this.events.fromRunner(this.stats.callSid, m.event);
        this.voice.onTranscriptEvent(m.event);
        break;
      case "goaway":
        this.log.line("info", "runner is draining; the link reconnects", { reason: m.reason });
        break;
      case "error":
        this.log.line("warn", "runner reported an error", { code: m.code, error: m.message });
        break;
      default:
        break;
    }
  }

  private sendToTwilio(text: string): void {
    try {
      this.twilio?.send(text);
    } catch {
      // the socket is closing; the close handler ends the call
    }
  }

  private closeTwilio(code: number, reason: string): void {
    closeQuietly(this.twilio, code, reason);
    void this.end(reason, false);
  }

  // ---- end of call ----

  private async end(reason: string, vanished: boolean): Promise<void> {
    const stats = this.stats;
    if (stats.state === "ended") return;
    const wasStreaming = stats.state === "streaming";
    stats.state = "ended";
    stats.endedAtMs = Date.now();
    const endReason = vanished && wasStreaming ? `${reason} without stop` : reason;
    stats.endReason = endReason;
    if (vanished && wasStreaming)
      this.log.line("warn", "Twilio socket closed without stop; ending the call", { reason });
    this.ingest.finish();
    this.relaySealed();
    stats.persist(Date.now());
    // a stream that ends while its token is checked: its audio goes on only once admitted
    if (this.admitting) await this.admitting;
    this.admission.ended(stats.endedAtMs);
    if (this.relay) {
      const why = vanished ? "twilio_disconnected" : "caller_hung_up";
      stats.relayLostAtEnd = await this.relay.stop(why, STOP_GRACE_MS);
      stats.persist(Date.now());
    }
    // the runner says call.ended when it is done; when it could not, the edge records it
    // (and tells the subscribers: it is gone, or the link closed before its call.ended came)
    // what the agent still had playing is cleared, said before call.ended
    this.voice.end();
    this.events.callEnded(stats.callSid, endReason);
    this.ledger.finish(endReason, Date.now());
    this.watch.end();
    closeQuietly(this.twilio, 1000, "call ended");
    // the last report: the call is over, and what its records still wait on
    await this.ledger.settled(2000);
    this.report.now(Date.now());
  }

  /** The ingest's notices, each kind logged once per call (bad input is counted in `bad`). */
  private logNotices(): void {
    for (const n of this.ingest.takeNotices())
      this.log.once(`ingest:${n.kind}`, "warn", n.message, { kind: n.kind, ...n.fields });
  }
}

function closeQuietly(ws: WebSocket | undefined, code: number, reason: string): void {
  try {
    ws?.close(code, reason);
  } catch {
    // already closed
  }
}
