/**
 * The whisper engine: one worker process per runner (one model), one `stream` session per call,
 * and one-shot `offline` decodes of a span of audio (the final pass).
 */
import type { RelayStart } from "@ozen/shared";
import type { Engine, EngineListener } from "../engine.js";
import { callHints, callLanguage, workerCommandArgs } from "./config.js";
import { WHISPER_PROFILE } from "./partial-text.js";
import type { WhisperConfig } from "./config.js";
import type { WorkerMessage } from "./protocol.js";
import { WhisperSession, newWhisperSessionStats } from "./session.js";
import type { WhisperSessionStats } from "./session.js";
import { WhisperWorker } from "./worker.js";
import type { WorkerReady, WorkerSessionHandler } from "./worker.js";

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

const RATE = 8000;

/** One offline decode's result. */
export interface OfflineResult {
  readonly text: string;
  /** The worker's decode time, ms. */
  readonly decodeMs: number;
  /** From the request to the result, ms. */
  readonly elapsedMs: number;
}

export interface OfflineRequest {
  /** The call (the key is derived from it). */
  readonly callSid: string;
  /** Audio to decode, in call order, each with its call sample. */
  readonly blocks: readonly { readonly startSample: number; readonly pcm: Int16Array }[];
  readonly language: string;
  readonly hints?: readonly string[];
  readonly prompt?: string;
  /** Give up after this long, ms (the worker's late answer is then ignored). */
  readonly timeoutMs: number;
}

export interface WhisperEngineCounters {
  sessionsOpened: number;
  offlineRequests: number;
  offlineResults: number;
  offlineTimeouts: number;
  offlineFailures: number;
}

/** The session counters the engine sums, in the order `newWhisperSessionStats` gives them. */
const SESSION_KEYS = Object.keys(newWhisperSessionStats()) as (keyof WhisperSessionStats)[];

export class WhisperEngine implements Engine {
  readonly name = "whisper";
  /** Stated in each call's `call.started`: partials carry no punctuation (partial-text.ts). */
  readonly profile = WHISPER_PROFILE;
  private readonly ended: WhisperSessionStats = newWhisperSessionStats();
  readonly sessions = new Set<WhisperSession>();
  private keySeq = 0;
  readonly counters: WhisperEngineCounters = {
    sessionsOpened: 0,
    offlineRequests: 0,
    offlineResults: 0,
    offlineTimeouts: 0,
    offlineFailures: 0,
  };

  constructor(
    readonly config: WhisperConfig,
    readonly worker: WhisperWorker,
    private readonly log?: Log,
  ) {}

  /** False once the worker is given up (it could not be restarted). */
  get available(): boolean {
    return !this.worker.gone;
  }

  /** Spawns the worker and waits until its model is loaded; rejects with a message a person can act on. */
  static async start(config: WhisperConfig, log?: Log): Promise<{ engine: WhisperEngine; ready: WorkerReady }> {
    const worker = new WhisperWorker({
      python: config.python,
      args: workerCommandArgs(config),
      cwd: config.workerDir,
      readyTimeoutMs: config.readyTimeoutMs,
      restartBackoffMs: config.restartBackoffMs,
      maxRestarts: config.maxRestarts,
      watchdogMs: config.watchdogMs,
      ...(log ? { log } : {}),
    });
    const ready = await worker.start();
    return { engine: new WhisperEngine(config, worker, log), ready };
  }

  open(call: RelayStart, listener: EngineListener): WhisperSession {
    this.counters.sessionsOpened++;
    let key = call.callSid;
    if ([...this.sessions].some((s) => s.key === key)) key = `${key}#s${++this.keySeq}`;
    const session: WhisperSession = new WhisperSession({
      worker: this.worker,
      key,
      listener,
      language: callLanguage(this.config, call.customParameters),
      hints: callHints(this.config, call),
      replayMaxS: this.config.replayMaxS,
      endTimeoutMs: this.config.endTimeoutMs,
      engineName: this.name,
      onDone: () => {
        this.sessions.delete(session);
        for (const k of SESSION_KEYS) this.ended[k] += session.stats[k];
      },
    });
    this.sessions.add(session);
    return session;
  }

  /**
   * Decodes a span of call audio once (`offline` mode: beam 5 by default) and resolves with its
   * text, or undefined when the worker is down, fails, or does not answer within `timeoutMs`.
   */
  decodeOffline(req: OfflineRequest): Promise<OfflineResult | undefined> {
    this.counters.offlineRequests++;
    const key = `${req.callSid}#fp${++this.keySeq}`;
    const t0 = performance.now();
    const worker = this.worker;
    return new Promise((resolve) => {
      let result: OfflineResult | undefined;
      let settled = false;
      const settle = (r: OfflineResult | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const handler: WorkerSessionHandler = {
        message: (m: WorkerMessage) => {
          if (m.type === "final") {
            result = { text: m.text.trim(), decodeMs: m.decode_ms, elapsedMs: performance.now() - t0 };
            this.counters.offlineResults++;
            settle(result);
          } else if (m.type === "closed") {
            worker.unregister(key, handler);
            if (!result) this.counters.offlineFailures++;
            settle(result);
          } else if (m.type === "error") {
            this.counters.offlineFailures++;
            worker.unregister(key, handler);
            settle(undefined);
          }
        },
        // the new process never heard of this request: the final pass skips this utterance
        restarted: () => {
          worker.unregister(key, handler);
          this.counters.offlineFailures++;
          settle(undefined);
        },
        lost: () => settle(undefined),
      };
      const timer = setTimeout(() => {
        if (!settled) this.counters.offlineTimeouts++;
        settle(undefined);
        // keep listening until `closed` so the late answer is swallowed, not misrouted
      }, req.timeoutMs);
      worker.register(key, handler);
      const opened = worker.send({
        type: "open",
        key,
        mode: "offline",
        language: req.language,
        hints: [...(req.hints ?? [])],
        ...(req.prompt ? { prompt: req.prompt } : {}),
      });
      if (!opened) {
        worker.unregister(key, handler);
        this.counters.offlineFailures++;
        settle(undefined);
        return;
      }
      for (const b of req.blocks) {
        for (let i = 0; i < b.pcm.length; i += RATE) {
          worker.sendAudio(key, b.startSample + i, b.pcm.subarray(i, Math.min(b.pcm.length, i + RATE)));
        }
      }
      worker.send({ type: "close", key });
    });
  }

  /** Counters for /stats and /metrics (sessions' counters summed over ended and live calls). */
  stats(): Record<string, number> {
    const sum = { ...this.ended };
    for (const x of this.sessions) for (const k of SESSION_KEYS) sum[k] += x.stats[k];
    return {
      ...this.counters,
      ...this.worker.counters,
      ...sum,
      workerUp: this.worker.up ? 1 : 0,
      activeSessions: this.sessions.size,
      // the worker's own figures, as of the watchdog's last poll
      ...Object.fromEntries(
        Object.entries(this.worker.lastWorkerStats).map(([k, v]) => [
          "worker" + k.replace(/(^|_)([a-z])/g, (_, _sep: string, c: string) => c.toUpperCase()),
          v,
        ]),
      ),
    };
  }

  close(): Promise<void> {
    this.log?.("info", "stopping the whisper worker");
    return this.worker.close();
  }
}
