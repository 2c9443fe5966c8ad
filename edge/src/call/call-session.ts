/**
 * CallSession: one Durable Object per call (adapter). It terminates Twilio's Media Streams
 * socket, keeps the call's counters, and owns the call's one relay link to the runner.
 *
 * Hot path: the message handler parses and appends the still-encoded payload to a bounded
 * queue (full: the oldest frame is dropped and counted) and nothing else; a microtask drains the
 * queue, decoding base64 + mu-law straight into the block that will be sent (no per-frame
 * allocation), and hands full blocks to the relay link. Nothing on that road awaits the network.
 */
import {
  BlockAssembler,
  DropOldestQueue,
  LatencyWindow,
  MAX_MESSAGE_BYTES,
  SequenceTracker,
  audioHeaderBytes,
  decodeBase64Into,
  outboundClear,
  outboundMark,
  outboundMedia,
  parseTwilioMessage,
  writeAudioHeader,
} from "@ozen/shared";
import type { BlockSink, MediaMessage, RunnerToEdge, StartMessage, TranscriptEvent } from "@ozen/shared";
import { CALL_TOKEN_PARAMETER, verifyCallToken } from "./call-token.js";
import { configFor } from "../config.js";
import type { EdgeConfig } from "../config.js";
import { greetingChunks } from "./greeting.js";
import { CallLedger } from "../records/ledger.js";
import { accountHub } from "../events/account-hub.js";
import { CallEventStream } from "../events/call-events.js";
import { DEFAULT_ACCOUNT } from "../events/subscription-config.js";
import { RelayLink } from "./relay-link.js";
import { newRelayLinkStats } from "./stats.js";
import type { CallStats } from "./stats.js";

export type { CallState, CallStats } from "./stats.js";
import type { PendingBlock } from "./relay-link.js";
import type { Env } from "../env.js";

const SAMPLE_RATE_HZ = 8000;
const FRAME_MS = 20;
const FRAME_SAMPLES = 160;
/** How long the link keeps trying to hand the runner the end of a call after the caller hung up. */
const STOP_GRACE_MS = 60_000;
/** Counters are written to storage at most this often while the call runs. */
const PERSIST_EVERY_MS = 1000;
/** The longest hole in Twilio's media timestamps that is filled with silence. */
const MAX_GAP_FILL_MS = 5000;

type BadKind =
  | "malformed_json"
  | "not_an_object"
  | "unknown_event"
  | "missing_field"
  | "bad_field"
  | "too_large"
  | "binary_frame"
  | "media_before_start"
  | "payload_not_base64"
  | "payload_not_160_bytes"
  | "payload_empty"
  | "bad_token"
  | "second_start";

export class CallSession implements DurableObject {
  protected readonly config: EdgeConfig;
  protected twilio: WebSocket | undefined;
  protected relay: RelayLink | undefined;
  protected start: StartMessage | undefined;
  private readonly ingest: DropOldestQueue<MediaMessage>;
  private drainScheduled = false;
  private assembler: BlockAssembler | undefined;
  private readonly sequence = new SequenceTracker();
  private readonly scratch = new Uint8Array((MAX_MESSAGE_BYTES * 3) / 4);
  private readonly framePool: ArrayBuffer[] = [];
  private currentFrame: ArrayBuffer | undefined;
  private lastMediaSeq = 0;
  /** Twilio's timestamp (ms) the next frame should carry; -1 before the first. */
  private expectedTimestampMs = -1;
  private firstMediaAtMs = 0;
  private lastPersistMs = 0;
  private readonly loggedOnce = new Set<string>();
  private readonly pendingMarks = new Set<string>();
  /** Transcript events to the call's subscribers and the account's hub (`call-events.ts`). */
  protected readonly events: CallEventStream;
  /** Date.now() when the open block took its first audio. */
  private blockOpenedAtMs = 0;
  /** Date.now() when the last full block went to a connected runner; 0 when the run was broken. */
  private lastLiveBlockAtMs = 0;
  private readonly blockInterval = new LatencyWindow(1024);
  private readonly blockHeld = new LatencyWindow(1024);
  protected readonly stats: CallStats;
  /** The call's record, its D1 copy and its webhooks (`ledger.ts`). */
  protected readonly ledger: CallLedger;

  constructor(
    protected readonly ctx: DurableObjectState,
    protected readonly env: Env,
  ) {
    this.config = configFor(env);
    this.ledger = new CallLedger(ctx.storage, env.DB, this.config.delivery, (level, msg, fields) =>
      this.log(level, msg, fields),
    );
    this.ingest = new DropOldestQueue(Math.ceil(this.config.ingestBufferMs / FRAME_MS));
    this.events = new CallEventStream({
      limits: this.config.subscriptions,
      hub: (batch) =>
        accountHub(env, DEFAULT_ACCOUNT).fetch("https://hub/publish", {
          method: "POST",
          body: JSON.stringify({ callSid: this.stats.callSid, events: batch }),
        }),
      log: (level, key, msg, fields) => this.logOnce(`events:${key}`, level, msg, fields),
      // the record gets the call's one transcript (edge utterance ids, no runner-restart repeats)
      onDelivered: (e) => this.ledger.onEvent(e),
    });
    this.stats = {
      callSid: "",
      streamSid: "",
      state: "waiting",
      startedAtMs: null,
      endedAtMs: null,
      endReason: null,
      framesIn: 0,
      framesDropped: 0,
      framesConcealed: 0,
      gapFilledMs: 0,
      audioMs: 0,
      bad: {},
      sequenceGaps: 0,
      sequenceMissing: 0,
      sequenceOutOfOrder: 0,
      otherTrackFrames: 0,
      aheadOfRealtimeMsMax: 0,
      handlerMsTotal: 0,
      handlerMsMax: 0,
      greetingMs: null,
      greetingFrames: 0,
      marksSent: 0,
      marksEchoed: 0,
      clears: 0,
      dtmf: 0,
      blocksMade: 0,
      decode: "table",
      blockMs: this.config.blockMs,
      blockIntervalMs: { count: 0, p50: null, p99: null, max: null, mean: null },
      blockHeldMs: { count: 0, p50: null, p99: null, max: null, mean: null },
      relay: { ...newRelayLinkStats(), pendingBlocks: 0, lostAtEnd: 0 },
      relayRttMs: { count: 0, p50: null, p99: null, max: null, mean: null },
      relayRttMsHistogram: {},
      events: {},
    };
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/stats")) return Response.json(await this.readStats());
    if (url.pathname.endsWith("/record")) return Response.json(this.ledger.view());
    if (url.pathname.endsWith("/events")) {
      if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") return this.events.subscribe(url);
      return Response.json({ events: this.events.recent() });
    }
    if (url.pathname.endsWith("/clear") && request.method === "POST") {
      const sent = this.bargeIn("api");
      return Response.json({ cleared: sent }, { status: sent ? 200 : 409 });
    }
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    if (this.twilio || this.stats.state === "ended") {
      return new Response("this call already has (or had) a stream", { status: 409 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    this.twilio = server;
    this.stats.callSid = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    server.addEventListener("message", (ev) => this.onTwilioMessage(ev.data));
    server.addEventListener("close", (ev) => void this.end(`twilio closed the socket (${ev.code})`, true));
    server.addEventListener("error", () => void this.end("twilio socket error", true));
    if (!this.config.verifySignatures)
      this.logOnce("insecure", "warn", "TWILIO_SIGNATURE=off: this call is not authenticated");
    return new Response(null, {
      status: 101,
      webSocket: client,
      headers: { "Sec-WebSocket-Protocol": "audio.twilio.com" },
    });
  }

  // ---- Twilio side ----

  private onTwilioMessage(data: string | ArrayBuffer): void {
    const t0 = performance.now();
    try {
      if (typeof data !== "string") {
        this.bad("binary_frame", "Twilio sends JSON text frames only; a binary frame was ignored");
        return;
      }
      if (data.length > MAX_MESSAGE_BYTES) {
        this.bad("too_large", `message of ${data.length} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit; closing`);
        this.closeTwilio(1009, "message too big");
        return;
      }
      const r = parseTwilioMessage(data);
      if (!r.ok) {
        this.bad(r.kind, r.message);
        return;
      }
      const m = r.message;
      if (m.event !== "connected") this.trackSequence(m.sequenceNumber);
      switch (m.event) {
        case "media":
          this.onMedia(m);
          break;
        case "start":
          void this.onStart(m);
          break;
        case "stop":
          void this.end("twilio stop", false);
          break;
        case "mark":
          this.onMarkEcho(m.mark.name);
          break;
        case "dtmf":
          this.stats.dtmf++;
          break;
        case "connected":
          break;
      }
    } finally {
      const dt = performance.now() - t0;
      this.stats.handlerMsTotal += dt;
      if (dt > this.stats.handlerMsMax) this.stats.handlerMsMax = dt;
    }
  }

  private trackSequence(seq: number): void {
    this.sequence.observe(seq);
    this.stats.sequenceGaps = this.sequence.gaps;
    this.stats.sequenceMissing = this.sequence.missing;
    this.stats.sequenceOutOfOrder = this.sequence.outOfOrder;
  }

  /** The hot path: append and schedule the drain; never awaits. */
  protected onMedia(m: MediaMessage): void {
    if (!this.assembler) {
      this.bad("media_before_start", "media arrived before start (or before its token was checked); dropped");
      return;
    }
    if (m.media.track !== "inbound") {
      this.stats.otherTrackFrames++;
      return;
    }
    this.stats.framesIn++;
    if (this.ingest.push(m)) {
      this.stats.framesDropped++;
      this.logOnce("ingest_full", "warn", "ingest buffer full: dropping the oldest frames", {
        capacity: this.ingest.capacity,
      });
    }
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      queueMicrotask(() => this.drain());
    }
  }

  private drain(): void {
    this.drainScheduled = false;
    const asm = this.assembler;
    if (!asm) return;
    for (let m = this.ingest.shift(); m; m = this.ingest.shift()) {
      this.lastMediaSeq = m.sequenceNumber;
      this.fillTimestampGap(asm, m.media.timestamp);
      const n = decodeBase64Into(m.media.payload, this.scratch);
      if (n < 0) {
        this.bad("payload_not_base64", "media payload is not valid base64; 20 ms of silence put in its place");
        this.stats.framesConcealed++;
        asm.pushSilence(FRAME_SAMPLES);
        this.expectedTimestampMs = m.media.timestamp + FRAME_MS;
        continue;
      }
      if (n === 0) {
        this.bad("payload_empty", "media payload is empty; ignored");
        continue;
      }
      if (n !== FRAME_SAMPLES)
        this.bad("payload_not_160_bytes", `media payload is ${n} bytes, expected 160; used as is`);
      asm.pushMulaw(this.scratch, n);
      this.expectedTimestampMs = m.media.timestamp + n / 8;
    }
    const now = Date.now();
    this.stats.audioMs = (asm.samplesIn * 1000) / SAMPLE_RATE_HZ;
    if (this.firstMediaAtMs === 0) this.firstMediaAtMs = now;
    const ahead = this.stats.audioMs - (now - this.firstMediaAtMs) - FRAME_MS;
    if (ahead > this.stats.aheadOfRealtimeMsMax) {
      this.stats.aheadOfRealtimeMsMax = ahead;
      if (ahead > 1000)
        this.logOnce("ahead", "warn", "client sends faster than real time", { aheadMs: Math.round(ahead) });
    }
    if (now - this.lastPersistMs >= PERSIST_EVERY_MS) this.persist(now);
  }

  /**
   * Twilio stamps each frame with its media time. When frames went missing upstream (Twilio's
   * congestion drops, error 31930) the stamp jumps: fill the hole with silence so the engine's
   * audio time stays the call's time, and count it. Jumps over MAX_GAP_FILL_MS are not filled
   * (a clock reset, not lost audio).
   */
  private fillTimestampGap(asm: BlockAssembler, timestampMs: number): void {
    const expected = this.expectedTimestampMs;
    if (expected < 0) return;
    const gapMs = timestampMs - expected;
    if (gapMs < FRAME_MS || gapMs > MAX_GAP_FILL_MS) return;
    asm.pushSilence(gapMs * 8);
    this.stats.gapFilledMs += gapMs;
    this.logOnce("gap", "warn", "media timestamps jumped: frames were lost before the edge; filled with silence", {
      gapMs,
    });
  }

  /** Where the assembler decodes: the frame buffer that will go to the runner as is. */
  private readonly sink: BlockSink = {
    open: (seq, startSample, capacity) => {
      const callSid = this.stats.callSid;
      const bytes = audioHeaderBytes(callSid) + capacity * 2;
      this.blockOpenedAtMs = Date.now();
      const pooled = this.framePool.pop();
      const frame = pooled && pooled.byteLength === bytes ? pooled : new ArrayBuffer(bytes);
      this.currentFrame = frame;
      return writeAudioHeader(frame, callSid, seq, startSample, SAMPLE_RATE_HZ, capacity);
    },
    seal: (seq, startSample, samples) => {
      let frame = this.currentFrame!;
      this.currentFrame = undefined;
      const full = audioHeaderBytes(this.stats.callSid) + samples * 2;
      if (full !== frame.byteLength) {
        // a short last block: rewrite the header for its real length
        const short = new ArrayBuffer(full);
        writeAudioHeader(short, this.stats.callSid, seq, startSample, SAMPLE_RATE_HZ, samples).set(
          new Int16Array(frame, audioHeaderBytes(this.stats.callSid), samples),
        );
        frame = short;
      }
      this.stats.blocksMade++;
      if (samples === this.assembler?.blockSamples) this.timeBlock(); // not the short last block
      this.relay?.send(seq, frame);
      if (this.config.ingestAck === "block")
        this.sendToTwilio(outboundMark(this.streamSid, `ozen-ack:${this.lastMediaSeq}`));
    },
  };

  /** Feed cadence and buffering of a full block about to go to the runner (whole-ms clock). */
  private timeBlock(): void {
    const now = Date.now();
    // the block's first frame carried FRAME_MS of audio that was already that old when it arrived
    this.blockHeld.record(now - this.blockOpenedAtMs + FRAME_MS);
    if (!this.relay?.connected) {
      this.lastLiveBlockAtMs = 0; // replayed later in a burst: not the live cadence
      return;
    }
    if (this.lastLiveBlockAtMs !== 0) this.blockInterval.record(now - this.lastLiveBlockAtMs);
    this.lastLiveBlockAtMs = now;
  }

  private recycle(block: PendingBlock): void {
    if (this.framePool.length < 8) this.framePool.push(block.frame);
  }

  protected async onStart(m: StartMessage): Promise<void> {
    const t0 = Date.now();
    if (this.start) {
      this.bad("second_start", "a second start on the same stream was ignored");
      return;
    }
    this.start = m;
    this.stats.streamSid = m.streamSid;
    this.stats.startedAtMs = t0;
    const { callSid, customParameters } = m.start;
    if (callSid !== this.stats.callSid) {
      this.logOnce("callsid", "warn", "start.callSid differs from the stream URL's; using the URL's", {});
    }
    // the greeting first: it is what the caller hears, and it needs nothing from the network
    this.playGreeting(t0);
    const { [CALL_TOKEN_PARAMETER]: token, ...params } = customParameters;
    // audio is taken from now on and held in the link until the token is checked
    this.assembler = new BlockAssembler((this.config.blockMs * SAMPLE_RATE_HZ) / 1000, this.sink);
    this.relay = new RelayLink({
      url: this.config.runnerUrl,
      start: {
        callSid: this.stats.callSid,
        streamSid: m.streamSid,
        accountSid: m.start.accountSid,
        sampleRateHz: SAMPLE_RATE_HZ,
        encoding: "pcm16le",
        blockMs: this.config.blockMs,
        tracks: m.start.tracks,
        customParameters: params,
      },
      maxPendingBlocks: Math.ceil(this.config.relayBufferMs / this.config.blockMs),
      backoffMinMs: this.config.relayBackoffMinMs,
      backoffMaxMs: this.config.relayBackoffMaxMs,
      onControl: (c) => this.onRunnerControl(c),
      onBlockDropped: (seq) =>
        this.logOnce("relay_full", "error", "relay buffer full while the runner is away: oldest audio dropped", {
          seq,
        }),
      onAcked: (b) => this.recycle(b),
      onInvalidEvent: (error) => this.events.invalidEvent(error),
      log: (level, msg, fields) => this.log(level, msg, fields),
    });
    this.stats.state = "streaming";
    if (
      this.config.verifySignatures &&
      !(await verifyCallToken(this.config.callTokenSecret, this.stats.callSid, token))
    ) {
      this.bad("bad_token", "start has no valid ozen_token parameter; closing");
      this.relay.close(1008, "bad call token");
      this.relay = undefined;
      this.assembler = undefined;
      this.closeTwilio(1008, "bad call token");
      return;
    }
    this.ledger.begin({
      callSid: this.stats.callSid,
      accountSid: m.start.accountSid,
      streamSid: m.streamSid,
      startedAtMs: t0,
    });
    this.relay.connect();
    this.persist(Date.now());
  }

  protected get streamSid(): string {
    return this.start?.streamSid ?? "";
  }

  private playGreeting(t0: number): void {
    if (this.config.greeting === "none" || this.config.streamMode !== "connect") return;
    const chunks = greetingChunks();
    for (const chunk of chunks) this.sendToTwilio(outboundMedia(this.streamSid, chunk));
    this.sendMark("greeting");
    this.stats.greetingMs = Date.now() - t0;
    this.stats.greetingFrames = chunks.length;
  }

  private sendMark(name: string): void {
    this.pendingMarks.add(name);
    this.stats.marksSent++;
    this.sendToTwilio(outboundMark(this.streamSid, name));
  }

  private onMarkEcho(name: string): void {
    if (this.pendingMarks.delete(name)) this.stats.marksEchoed++;
  }

  /** Barge-in: Twilio drops the agent's queued audio and echoes every pending mark. */
  protected bargeIn(by: string): boolean {
    // an ended call's socket is gone (or going): nothing to clear, and the caller must hear so
    if (this.stats.state !== "streaming" || !this.twilio || this.config.streamMode !== "connect") return false;
    this.sendToTwilio(outboundClear(this.streamSid));
    this.stats.clears++;
    this.log("info", "barge-in: clear sent", { by, pendingMarks: this.pendingMarks.size });
    return true;
  }

  private onRunnerControl(m: RunnerToEdge): void {
    switch (m.type) {
      case "clear":
        this.bargeIn("runner");
        break;
      case "event":
        this.onTranscriptEvent(m.event);
        break;
      case "goaway":
        this.log("info", "runner is draining; the link reconnects", { reason: m.reason });
        break;
      case "error":
        this.log("warn", "runner reported an error", { code: m.code, error: m.message });
        break;
      default:
        break;
    }
  }

  /** A transcript event from the runner: counted, then into the call's event stream. */
  private onTranscriptEvent(event: TranscriptEvent): void {
    this.stats.events[event.type] = (this.stats.events[event.type] ?? 0) + 1;
    this.events.fromRunner(this.stats.callSid, event);
  }

  protected sendToTwilio(text: string): void {
    try {
      this.twilio?.send(text);
    } catch {
      // the socket is closing; the close handler ends the call
    }
  }

  private closeTwilio(code: number, reason: string): void {
    try {
      this.twilio?.close(code, reason);
    } catch {
      // already closed
    }
    void this.end(reason, false);
  }

  // ---- end of call, stats ----

  private async end(reason: string, vanished: boolean): Promise<void> {
    if (this.stats.state === "ended") return;
    const wasStreaming = this.stats.state === "streaming";
    this.stats.state = "ended";
    this.stats.endedAtMs = Date.now();
    this.stats.endReason = vanished && wasStreaming ? `${reason} without stop` : reason;
    if (vanished && wasStreaming) this.log("warn", "Twilio socket closed without stop; ending the call", { reason });
    this.drain();
    this.assembler?.flush();
    this.assembler = undefined;
    this.persist(Date.now());
    if (this.relay) {
      this.stats.relay.lostAtEnd = await this.relay.stop(
        vanished ? "twilio_disconnected" : "caller_hung_up",
        STOP_GRACE_MS,
      );
      this.persist(Date.now());
    }
    // the runner says call.ended when it is done; when it could not, the edge records it
    // (and tells the subscribers: it is gone, or the link closed before its call.ended came)
    this.events.callEnded(this.stats.callSid, this.stats.endReason ?? reason);
    this.ledger.finish(this.stats.endReason ?? reason, Date.now());
    if (this.twilio) {
      try {
        this.twilio.close(1000, "call ended");
      } catch {
        // already closed
      }
    }
  }

  /** The object's one alarm: D1 write and webhook retries (`ledger.ts`, `alarms.ts`). */
  async alarm(): Promise<void> {
    await this.ledger.alarm();
  }

  private snapshot(): CallStats {
    this.stats.blockIntervalMs = this.blockInterval.summary();
    this.stats.blockHeldMs = this.blockHeld.summary();
    this.stats.eventStream = this.events.snapshot();
    if (this.relay) {
      Object.assign(this.stats.relay, this.relay.stats, { pendingBlocks: this.relay.pendingBlocks });
      this.stats.relayRttMs = this.relay.rtt.summary();
      this.stats.relayRttMsHistogram = this.relay.rttHistogram;
    }
    return this.stats;
  }

  private persist(now: number): void {
    this.lastPersistMs = now;
    // allowUnconfirmed: outgoing messages (acks, greeting) must not wait for this write
    void this.ctx.storage.put("stats", this.snapshot(), { allowUnconfirmed: true });
  }

  private async readStats(): Promise<CallStats | { state: "unknown" }> {
    if (this.stats.state !== "waiting" || this.twilio) return this.snapshot();
    return (await this.ctx.storage.get<CallStats>("stats")) ?? { state: "unknown" };
  }

  // ---- logs ----

  private bad(kind: BadKind, message: string): void {
    this.stats.bad[kind] = (this.stats.bad[kind] ?? 0) + 1;
    this.logOnce(`bad:${kind}`, "warn", message, { kind });
  }

  private logOnce(key: string, level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void {
    if (this.loggedOnce.has(key)) return;
    this.loggedOnce.add(key);
    this.log(level, msg, fields);
  }

  protected log(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void {
    if (level === "info") return; // production logs WARNING and above (playbook F)
    const line = JSON.stringify({ level, msg, callSid: this.stats.callSid, ...fields });
    if (level === "error") console.error(line);
    else console.warn(line);
  }
}
