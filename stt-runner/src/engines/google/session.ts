/**
 * One call's Google streaming recognition, kept alive for the whole call ("endless streaming").
 *
 * - Audio since the last final result is kept. A new stream (rollover before Google's 305 s
 *   limit, reconnect after an error, next model in the chain) starts at that point and replays
 *   it, so no audio is at risk and no final is produced twice.
 * - Rollover half-closes the old stream and waits for its last results (drain) before the new
 *   one opens: finals that arrive during the drain move the replay point forward, so the new
 *   stream never re-hears audio that already has a final.
 * - Result times are stream-relative at Google; they are mapped back to call audio through the
 *   stream's anchors, which also skip the keep-alive silence sent while the call's audio stalled.
 */
import { encodeMulawInto } from "@ozen/shared";
import type { EngineListener, EngineSession } from "../engine.js";
import { punctuates } from "./config.js";
import type { GoogleConfig } from "./config.js";
import { isModelUnavailable } from "./model-errors.js";

const RATE = 8000;

/** What the session needs from a gRPC bidi stream (the official client's stream is one). */
export interface SpeechStream {
  write(request: unknown): boolean;
  end(): void;
  cancel?(): void;
  destroy?(): void;
  on(event: "data", fn: (response: unknown) => void): this;
  on(event: "error", fn: (err: Error & { code?: number; details?: string }) => void): this;
  on(event: "end" | "close", fn: () => void): this;
}

export interface GoogleSessionDeps {
  readonly config: GoogleConfig;
  readonly phrases: readonly string[];
  readonly listener: EngineListener;
  /** Opens a StreamingRecognize call on the official client. */
  readonly openStream: () => SpeechStream;
  readonly now?: () => number;
  readonly log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface GoogleSessionStats {
  streamsOpened: number;
  rollovers: number;
  reconnects: number;
  modelFallbacks: number;
  keepaliveMs: number;
  replayedMs: number;
  requests: number;
  audioBytes: number;
  maxRequestBytes: number;
  finals: number;
  interims: number;
}

interface Block {
  readonly startSample: number;
  readonly pcm: Int16Array;
}

interface Anchor {
  readonly streamSample: number;
  readonly callSample: number;
  readonly synthetic: boolean;
}

/** gRPC status codes (grpc/status.h). */
const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

const RETRYABLE = new Set<number>([
  Code.UNKNOWN,
  Code.DEADLINE_EXCEEDED,
  Code.RESOURCE_EXHAUSTED,
  Code.ABORTED,
  Code.INTERNAL,
  Code.UNAVAILABLE,
]);

class ActiveStream {
  sentSamples = 0;
  readonly anchors: Anchor[] = [];
  draining = false;
  done = false;
  gotResponse = false;
  constructor(
    readonly grpc: SpeechStream,
    readonly startSample: number,
    readonly model: string,
  ) {}

  /** Call sample of a stream-relative time in samples. */
  toCall(streamSample: number): number {
    const a = this.anchors;
    if (a.length === 0) return this.startSample;
    let lo = 0;
    let hi = a.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (a[mid]!.streamSample <= streamSample) lo = mid;
      else hi = mid - 1;
    }
    const anchor = a[lo]!;
    if (anchor.streamSample > streamSample) return anchor.callSample;
    return anchor.synthetic ? anchor.callSample : anchor.callSample + (streamSample - anchor.streamSample);
  }
}

function durationSeconds(d: unknown): number | undefined {
  if (!d || typeof d !== "object") return undefined;
  const { seconds, nanos } = d as { seconds?: unknown; nanos?: unknown };
  const s =
    typeof seconds === "string" ? Number(seconds) : typeof seconds === "number" ? seconds : Number(seconds ?? 0);
  return (Number.isFinite(s) ? s : 0) + (typeof nanos === "number" ? nanos / 1e9 : 0);
}

interface ResultView {
  transcript: string;
  confidence?: number;
  isFinal: boolean;
  stability?: number;
  endS?: number;
}

function readResults(response: unknown): ResultView[] {
  const results = (response as { results?: unknown[] }).results;
  if (!Array.isArray(results)) return [];
  return results.map((r) => {
    const x = r as {
      alternatives?: { transcript?: string; confidence?: number }[];
      isFinal?: boolean;
      stability?: number;
      resultEndTime?: unknown;
      resultEndOffset?: unknown;
    };
    const alt = x.alternatives?.[0];
    return {
      transcript: alt?.transcript ?? "",
      confidence: alt?.confidence || undefined,
      isFinal: x.isFinal === true,
      stability: x.stability || undefined,
      endS: durationSeconds(x.resultEndTime ?? x.resultEndOffset),
    };
  });
}

export class GoogleSession implements EngineSession {
  private readonly config: GoogleConfig;
  private readonly now: () => number;
  private readonly log: NonNullable<GoogleSessionDeps["log"]>;
  private stream: ActiveStream | undefined;
  private draining: ActiveStream | undefined;
  private modelIndex = 0;
  /** Real audio not yet covered by a final, oldest first. */
  private replay: Block[] = [];
  private lastFinalEndSample = 0;
  private fedUntilSample = 0;
  private lastAudioWallMs: number;
  private consecutiveFailures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private keepalive: ReturnType<typeof setInterval> | undefined;
  private ended = false;
  private failed = false;
  private endResolve: (() => void) | undefined;
  private readonly mulawScratch = new Uint8Array(RATE);
  readonly stats: GoogleSessionStats = {
    streamsOpened: 0,
    rollovers: 0,
    reconnects: 0,
    modelFallbacks: 0,
    keepaliveMs: 0,
    replayedMs: 0,
    requests: 0,
    audioBytes: 0,
    maxRequestBytes: 0,
    finals: 0,
    interims: 0,
  };

  constructor(private readonly deps: GoogleSessionDeps) {
    this.config = deps.config;
    this.now = deps.now ?? (() => performance.now());
    this.log = deps.log ?? (() => {});
    this.lastAudioWallMs = this.now();
    this.open();
    this.keepalive = setInterval(() => this.keepAlive(), 100);
  }

  /** The model the current stream uses ("" = Google's default). */
  get model(): string {
    return this.config.models[this.modelIndex] ?? "";
  }

  get committedSample(): number {
    return this.lastFinalEndSample;
  }

  /** Audio not yet covered by a final (what a restart would replay), ms. */
  get audioAtRiskMs(): number {
    return ((this.fedUntilSample - this.lastFinalEndSample) * 1000) / RATE;
  }

  feed(pcm: Int16Array, startSample: number): void {
    if (this.ended || this.failed) return;
    const block: Block = { startSample, pcm: pcm.slice() };
    this.replay.push(block);
    this.fedUntilSample = startSample + pcm.length;
    this.lastAudioWallMs = this.now();
    const s = this.stream;
    if (s && !s.draining) {
      this.send(s, block.pcm, block.startSample, false);
      this.maybeRollover(false);
    }
  }

  end(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.stopKeepalive();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const s = this.stream;
    if (!s || this.failed) {
      this.cancelAll();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.endResolve = resolve;
      this.halfClose(s);
    });
  }

  // ---- streams ----

  private open(): void {
    if (this.failed) return;
    const model = this.model;
    let grpc: SpeechStream;
    try {
      grpc = this.deps.openStream();
    } catch (e) {
      this.onStreamError(undefined, Object.assign(new Error(String(e)), { code: Code.UNAVAILABLE }));
      return;
    }
    const s = new ActiveStream(grpc, this.lastFinalEndSample, model);
    this.stream = s;
    this.stats.streamsOpened++;
    grpc.on("data", (r) => this.onResponse(s, r));
    grpc.on("error", (e) => this.onStreamError(s, e));
    grpc.on("end", () => this.onStreamEnd(s));
    grpc.on("close", () => this.onStreamEnd(s));
    grpc.write(this.configRequest(model));
    // replay what has no final yet, then live audio follows in feed()
    for (const b of this.replay) {
      const end = b.startSample + b.pcm.length;
      if (end <= this.lastFinalEndSample) continue;
      const from = Math.max(0, this.lastFinalEndSample - b.startSample);
      const pcm = from > 0 ? b.pcm.subarray(from) : b.pcm;
      this.send(s, pcm, b.startSample + from, false);
      if (this.stats.streamsOpened > 1) this.stats.replayedMs += (pcm.length * 1000) / RATE;
    }
    if (this.ended) this.halfClose(s);
  }

  private configRequest(model: string): unknown {
    const c = this.config;
    const punctuation = punctuates(c);
    const phrases = this.deps.phrases;
    if (c.api === "v1") {
      return {
        streamingConfig: {
          config: {
            encoding: c.encoding,
            sampleRateHertz: RATE,
            audioChannelCount: 1,
            languageCode: c.languageCode,
            maxAlternatives: 1,
            enableAutomaticPunctuation: punctuation,
            ...(model ? { model } : {}),
            ...(model === "phone_call" ? { useEnhanced: true } : {}),
            ...(phrases.length ? { speechContexts: [{ phrases, boost: c.phraseBoost }] } : {}),
          },
          interimResults: true,
          singleUtterance: false,
        },
      };
    }
    return {
      recognizer: `projects/${c.project}/locations/${c.location}/recognizers/_`,
      streamingConfig: {
        config: {
          explicitDecodingConfig: { encoding: c.encoding, sampleRateHertz: RATE, audioChannelCount: 1 },
          languageCodes: [c.languageCode],
          ...(model ? { model } : {}),
          features: { enableAutomaticPunctuation: punctuation, maxAlternatives: 1 },
          ...(phrases.length
            ? {
                adaptation: {
                  phraseSets: [
                    { inlinePhraseSet: { phrases: phrases.map((value) => ({ value, boost: c.phraseBoost })) } },
                  ],
                },
              }
            : {}),
        },
        streamingFeatures: { interimResults: true },
      },
    };
  }

  /** Writes audio in requests under Google's per-request limit (25 KB v1, 15 KB v2). */
  private send(s: ActiveStream, pcm: Int16Array, callSample: number, synthetic: boolean): void {
    const bytesPerSample = this.config.encoding === "MULAW" ? 1 : 2;
    const maxSamples = Math.floor((this.config.api === "v1" ? 25_000 : 15_000) / bytesPerSample);
    for (let i = 0; i < pcm.length; i += maxSamples) {
      const part = pcm.subarray(i, Math.min(pcm.length, i + maxSamples));
      let bytes: Buffer;
      if (bytesPerSample === 1) {
        // MULAW: re-encoding the edge's table-decoded PCM gives back Twilio's exact bytes
        const n = encodeMulawInto(part, this.mulawScratch);
        bytes = Buffer.from(this.mulawScratch.subarray(0, n));
      } else {
        bytes = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
      }
      s.anchors.push({ streamSample: s.sentSamples, callSample: callSample + i, synthetic });
      s.sentSamples += part.length;
      this.stats.requests++;
      this.stats.audioBytes += bytes.length;
      if (bytes.length > this.stats.maxRequestBytes) this.stats.maxRequestBytes = bytes.length;
      s.grpc.write(this.config.api === "v1" ? { audioContent: bytes } : { audio: bytes });
    }
  }

  private onResponse(s: ActiveStream, response: unknown): void {
    const err = (response as { error?: { code?: number; message?: string } | null }).error;
    if (err && err.code) {
      this.onStreamError(s, Object.assign(new Error(err.message ?? "error"), { code: err.code, details: err.message }));
      return;
    }
    const results = readResults(response);
    if (results.length === 0) return;
    if (!s.gotResponse) {
      s.gotResponse = true;
      this.consecutiveFailures = 0; // a stream that answers is a working one
    }
    const finals = results.filter((r) => r.isFinal);
    if (finals.length > 0) {
      const endS = Math.max(...finals.map((r) => r.endS ?? 0));
      const endSample = Math.max(this.lastFinalEndSample, s.toCall(Math.round(endS * RATE)));
      const startMs = (this.lastFinalEndSample * 1000) / RATE;
      this.lastFinalEndSample = endSample;
      this.replay = this.replay.filter((b) => b.startSample + b.pcm.length > endSample);
      const text = finals.map((r) => r.transcript).join("");
      const confidence = finals[0]!.confidence;
      this.stats.finals++;
      this.deps.listener.final({
        text,
        ...(confidence !== undefined ? { confidence } : {}),
        audioStartMs: startMs,
        audioEndMs: (endSample * 1000) / RATE,
      });
      if (s === this.stream) this.maybeRollover(true);
    }
    const interims = results.filter((r) => !r.isFinal && r.transcript.length > 0);
    if (interims.length > 0 && !s.draining) {
      const endS = Math.max(...interims.map((r) => r.endS ?? 0));
      this.stats.interims++;
      this.deps.listener.interim({
        segments: interims.map((r) =>
          r.stability !== undefined ? { text: r.transcript, stability: r.stability } : { text: r.transcript },
        ),
        audioEndMs: (s.toCall(Math.round(endS * RATE)) * 1000) / RATE,
      });
    }
  }

  private maybeRollover(atFinal: boolean): void {
    const s = this.stream;
    if (!s || s.draining || this.ended) return;
    const ageS = s.sentSamples / RATE;
    if (ageS >= this.config.maxStreamS || (atFinal && ageS >= this.config.restartAfterS)) {
      this.stats.rollovers++;
      this.log("info", "rolling over to a new Google stream", { streamAudioS: Math.round(ageS), atFinal });
      this.halfClose(s);
    }
  }

  /** Stops sending on `s` and waits for its last results; the next stream opens when it is done. */
  private halfClose(s: ActiveStream): void {
    if (s.draining) return;
    s.draining = true;
    if (this.stream === s) this.stream = undefined;
    this.draining = s;
    try {
      s.grpc.end();
    } catch {
      // already closed
    }
    setTimeout(() => {
      if (!s.done) {
        this.log("warn", "Google stream did not finish after half-close; cancelling", {
          timeoutMs: this.config.drainTimeoutMs,
        });
        s.grpc.cancel?.();
        this.onStreamEnd(s);
      }
    }, this.config.drainTimeoutMs).unref?.();
  }

  private onStreamEnd(s: ActiveStream): void {
    if (s.done) return;
    s.done = true;
    if (this.draining === s) this.draining = undefined;
    if (this.stream === s) {
      // Google ended a stream we were still using (no error): treat it as a rollover
      this.stream = undefined;
    }
    if (this.ended) {
      if (!this.stream && !this.draining) this.finish();
      return;
    }
    if (!this.stream && !this.retryTimer && !this.failed) this.open();
  }

  private onStreamError(s: ActiveStream | undefined, err: Error & { code?: number; details?: string }): void {
    if (s) {
      if (s.done) return;
      s.done = true;
      if (this.draining === s) this.draining = undefined;
      if (this.stream === s) this.stream = undefined;
      if (s.draining) {
        // an error while draining only ends the drain
        if (this.ended) this.finish();
        else if (!this.stream && !this.retryTimer) this.open();
        return;
      }
    }
    if (this.ended) {
      this.finish();
      return;
    }
    const code = err.code ?? Code.UNKNOWN;
    const message = err.details ?? err.message;
    if (code === Code.OUT_OF_RANGE) {
      // the 305 s limit or the audio timeout: a new stream at once, with the replay
      this.stats.rollovers++;
      this.log("warn", "Google ended the stream; rolling over", { code, error: message });
      this.open();
      return;
    }
    if (isModelUnavailable(code, message)) {
      if (this.modelIndex + 1 < this.config.models.length) {
        const from = this.model;
        this.modelIndex++;
        this.stats.modelFallbacks++;
        this.log("warn", "Google has no such model for this language or location; trying the next", {
          from,
          to: this.model || "(default)",
          language: this.config.languageCode,
          location: this.config.location,
          error: message,
        });
        this.open();
        return;
      }
      return this.fail(
        "model_unsupported",
        `no model in ${JSON.stringify(this.config.models)} is supported: ${message}`,
      );
    }
    if (!RETRYABLE.has(code)) return this.fail(`grpc_${code}`, message);
    this.consecutiveFailures++;
    if (this.consecutiveFailures > this.config.retryBudget) {
      return this.fail(`grpc_${code}`, `${this.consecutiveFailures} consecutive stream failures; last: ${message}`);
    }
    const delay = Math.min(5000, 100 * 2 ** (this.consecutiveFailures - 1));
    this.stats.reconnects++;
    this.log("warn", "Google stream failed; reconnecting", { code, error: message, retryInMs: delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.ended && !this.stream) this.open();
    }, delay);
  }

  private fail(code: string, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.stopKeepalive();
    this.cancelAll();
    this.log("error", "Google engine gave up on this call", { code, error: message });
    this.deps.listener.failed({ code, message, resumeFromMs: (this.lastFinalEndSample * 1000) / RATE });
  }

  /** Keeps Google's audio timeout from tripping while the call's audio stalls (hold, relay reconnect). */
  private keepAlive(): void {
    const s = this.stream;
    if (!s || s.draining || this.ended) return;
    const stalledMs = this.now() - this.lastAudioWallMs;
    if (stalledMs < this.config.keepaliveAfterMs) return;
    const silence = new Int16Array(RATE / 10);
    this.send(s, silence, this.fedUntilSample, true);
    this.stats.keepaliveMs += 100;
    this.maybeRollover(false);
  }

  private stopKeepalive(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  private cancelAll(): void {
    for (const s of [this.stream, this.draining]) {
      if (!s) continue;
      s.done = true;
      try {
        s.grpc.cancel?.();
      } catch {
        // already gone
      }
    }
    this.stream = undefined;
    this.draining = undefined;
  }

  private finish(): void {
    this.stopKeepalive();
    this.endResolve?.();
    this.endResolve = undefined;
  }
}
