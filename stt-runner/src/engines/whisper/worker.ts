/**
 * The whisper worker process beside the runner (adapter): spawns `python -m ozen_whisper serve`,
 * speaks docs/whisper-protocol.md over its stdin/stdout, routes results to sessions by key, and
 * restarts it when it dies. One worker serves every call (one model in memory).
 *
 * Lifecycle: `start()` resolves once the worker said `ready`, and rejects with a message a person
 * can act on when it said `fatal` (e.g. the model path does not exist), exited, or took longer
 * than `readyTimeoutMs`. After that, a worker that exits is restarted (backoff doubling from
 * `restartBackoffMs`); when the new one is ready every registered session is told (`restarted`)
 * so it re-opens and replays its audio since its last final. A worker that cannot be brought
 * back after `maxRestarts` attempts in a row is given up: sessions are told (`lost`). A worker
 * that stops answering for `watchdogMs` (hung, or stopped) is killed and restarted the same way.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { FrameDecoder, encodeAudioFrame, encodeJsonFrame, parseWorkerMessage } from "./protocol.js";
import type { JsonMessage, WorkerMessage } from "./protocol.js";

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface WhisperWorkerOptions {
  /** The Python interpreter (the worker's venv). */
  readonly python: string;
  /** Arguments after the interpreter, e.g. `-m ozen_whisper serve --model tiny.en`. */
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** How long a (re)start may take to load the model, ms. */
  readonly readyTimeoutMs: number;
  /** First delay before a restart, ms; doubles per failed attempt, at most 5 s. */
  readonly restartBackoffMs: number;
  /** Failed restarts in a row before the worker is given up. */
  readonly maxRestarts: number;
  /**
   * A ready worker that says nothing for this long (it is asked for `stats` every quarter of it)
   * is taken for hung: killed and restarted like a crashed one, ms; 0 turns the watchdog off.
   */
  readonly watchdogMs?: number;
  readonly log?: Log;
}

export type WorkerReady = Extract<WorkerMessage, { type: "ready" }>;

/** What a session registered under a key hears from the worker. */
export interface WorkerSessionHandler {
  /** A message about this key (vad, partial, final, closed, error). */
  message(m: WorkerMessage): void;
  /** A new worker process is ready; the old one forgot every session. */
  restarted(): void;
  /** The worker is gone for good (it could not be restarted, or the runner is closing). */
  lost(reason: string): void;
}

export interface WhisperWorkerCounters {
  /** Processes spawned (the first included). */
  spawns: number;
  /** Times a ready worker exited without being asked to. */
  crashes: number;
  /** Times a replacement worker became ready. */
  restarts: number;
  framesOut: number;
  framesIn: number;
  audioSamplesOut: number;
  /** Frames or messages from the worker that broke the protocol. */
  badFrames: number;
  /** `error` messages from the worker. */
  workerErrors: number;
  /** Writes dropped because no worker was up (the session replays them on restart). */
  writesWhileDown: number;
  /** Workers killed because they stopped answering. */
  hung: number;
}

/** The worker could not be started; `message` says why, for a person. */
export class WhisperWorkerError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

type State = "idle" | "starting" | "up" | "down" | "lost" | "closed";

export class WhisperWorker {
  private child: ChildProcessWithoutNullStreams | undefined;
  private state: State = "idle";
  private readonly handlers = new Map<string, WorkerSessionHandler>();
  private readonly log: Log;
  private failedAttempts = 0;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private stderrTail: string[] = [];
  private statsWaiters: ((s: Record<string, unknown> | undefined) => void)[] = [];
  /** The `ready` message of the current process. */
  ready: WorkerReady | undefined;
  readonly counters: WhisperWorkerCounters = {
    spawns: 0,
    crashes: 0,
    restarts: 0,
    framesOut: 0,
    framesIn: 0,
    audioSamplesOut: 0,
    badFrames: 0,
    workerErrors: 0,
    writesWhileDown: 0,
    hung: 0,
  };
  /** The worker's last `stats` answer (numbers only), polled by the watchdog. */
  lastWorkerStats: Record<string, number> = {};
  private lastHeardMs = 0;
  private watchdog: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: WhisperWorkerOptions) {
    this.log = o.log ?? (() => {});
  }

  /** True while a ready worker process is running. */
  get up(): boolean {
    return this.state === "up";
  }

  /** True once the worker was given up or closed: nothing will come back. */
  get gone(): boolean {
    return this.state === "lost" || this.state === "closed";
  }

  /** The current process id (tests kill it). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get sessions(): number {
    return this.handlers.size;
  }

  /** Spawns the worker and waits for `ready`; rejects with a `WhisperWorkerError` when it will not come up. */
  async start(): Promise<WorkerReady> {
    if (this.state !== "idle") throw new Error("WhisperWorker.start() called twice");
    this.state = "starting";
    try {
      const ready = await this.spawnOnce();
      this.state = "up";
      this.startWatchdog();
      return ready;
    } catch (e) {
      this.state = "closed";
      throw e;
    }
  }

  register(key: string, handler: WorkerSessionHandler): void {
    this.handlers.set(key, handler);
  }

  unregister(key: string, handler?: WorkerSessionHandler): void {
    if (!handler || this.handlers.get(key) === handler) this.handlers.delete(key);
  }

  /** Sends a JSON message; false when no worker is up (nothing was written). */
  send(message: JsonMessage): boolean {
    return this.write(encodeJsonFrame(message));
  }

  /** Sends call audio for session `key`; false when no worker is up. */
  sendAudio(key: string, startSample: number, pcm: Int16Array): boolean {
    const ok = this.write(encodeAudioFrame(key, startSample, pcm));
    if (ok) this.counters.audioSamplesOut += pcm.length;
    return ok;
  }

  /** The worker's own `stats` (queue, decodes, ...), or undefined when it does not answer in time. */
  workerStats(timeoutMs = 1000): Promise<Record<string, unknown> | undefined> {
    if (!this.send({ type: "stats" })) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter = (s: Record<string, unknown> | undefined) => {
        clearTimeout(timer);
        resolve(s);
      };
      const timer = setTimeout(() => {
        this.statsWaiters = this.statsWaiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, timeoutMs);
      this.statsWaiters.push(waiter);
    });
  }

  /** Asks the worker to finish and exit; kills it after `graceMs`. Sessions are told `lost`. */
  async close(graceMs = 3000): Promise<void> {
    if (this.state === "closed") return;
    const wasUp = this.state === "up";
    this.state = "closed";
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    const child = this.child;
    for (const [key, h] of [...this.handlers]) {
      this.handlers.delete(key);
      h.lost("the runner is closing");
    }
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    if (wasUp) {
      try {
        child.stdin.write(encodeJsonFrame({ type: "shutdown" }));
        child.stdin.end();
      } catch {
        // the pipe is already gone
      }
    } else {
      child.kill("SIGKILL");
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  // ---- process ----

  private write(bytes: Uint8Array): boolean {
    const child = this.child;
    if (this.state !== "up" || !child || !child.stdin.writable) {
      this.counters.writesWhileDown++;
      return false;
    }
    child.stdin.write(bytes);
    this.counters.framesOut++;
    return true;
  }

  /** One process: resolves at `ready`, rejects at `fatal`, early exit or timeout. */
  private spawnOnce(): Promise<WorkerReady> {
    this.counters.spawns++;
    this.ready = undefined;
    this.stderrTail = [];
    const child = spawn(this.o.python, [...this.o.args], {
      cwd: this.o.cwd,
      env: this.o.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child = child;
    const decoder = new FrameDecoder();
    return new Promise<WorkerReady>((resolve, reject) => {
      let settled = false;
      const settle = (err: WhisperWorkerError | undefined, ready?: WorkerReady) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          child.kill("SIGKILL");
          reject(err);
        } else resolve(ready!);
      };
      const timer = setTimeout(
        () =>
          settle(
            new WhisperWorkerError(
              `the whisper worker did not become ready within ${this.o.readyTimeoutMs} ms${this.tail()}`,
              "ready_timeout",
            ),
          ),
        this.o.readyTimeoutMs,
      );
      child.on("error", (e) =>
        settle(
          new WhisperWorkerError(`the whisper worker could not be started (${this.o.python}): ${e.message}`, "spawn"),
        ),
      );
      child.stdin.on("error", () => {
        // EPIPE when the worker died: the exit handler deals with it
      });
      child.stderr.setEncoding("utf8");
      let partialLine = "";
      child.stderr.on("data", (s: string) => {
        const lines = (partialLine + s).split("\n");
        partialLine = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.trim()) continue;
          this.stderrTail.push(line);
          if (this.stderrTail.length > 20) this.stderrTail.shift();
          this.log("info", "whisper worker", { line: line.slice(0, 500) });
        }
      });
      child.stdout.on("data", (bytes: Buffer) => {
        for (const f of decoder.push(bytes)) {
          if (!f.ok) {
            this.counters.badFrames++;
            this.log("warn", "bad frame from the whisper worker", { error: f.message });
            continue;
          }
          if (f.frame.kind !== "json") {
            this.counters.badFrames++;
            continue;
          }
          const p = parseWorkerMessage(f.frame.message);
          if (!p.ok) {
            this.counters.badFrames++;
            this.log("warn", "bad message from the whisper worker", { error: p.message });
            continue;
          }
          this.counters.framesIn++;
          this.lastHeardMs = performance.now();
          const m = p.message;
          if (m.type === "ready") {
            this.ready = m;
            settle(undefined, m);
          } else if (m.type === "fatal") {
            settle(new WhisperWorkerError(`the whisper worker cannot start: ${m.message} (${m.code})`, m.code));
          } else this.route(m);
        }
        if (decoder.broken) {
          this.log("error", "the whisper worker's output is not protocol frames; restarting it");
          child.kill("SIGKILL");
        }
      });
      child.on("exit", (code, signal) => {
        settle(
          new WhisperWorkerError(
            `the whisper worker exited (${signal ?? `code ${code}`}) before it was ready${this.tail()}`,
            "exited",
          ),
        );
        if (this.child === child) this.onExit(code, signal);
      });
    });
  }

  private tail(): string {
    const t = this.stderrTail.slice(-5).join(" | ");
    return t ? `; its log ends: ${t.slice(-800)}` : "";
  }

  private route(m: WorkerMessage): void {
    if (m.type === "stats") {
      this.lastWorkerStats = Object.fromEntries(
        Object.entries(m).filter((e): e is [string, number] => typeof e[1] === "number"),
      );
      const waiters = this.statsWaiters.splice(0);
      for (const w of waiters) w(m);
      return;
    }
    if (m.type === "error") {
      this.counters.workerErrors++;
      this.log("warn", "whisper worker error", { code: m.code, key: m.key, error: m.message });
    }
    const key = "key" in m ? m.key : undefined;
    if (key === undefined) return;
    this.handlers.get(key)?.message(m);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.child = undefined;
    for (const w of this.statsWaiters.splice(0)) w(undefined);
    // a process that dies while starting is the start's failure (rejected above), not a crash
    if (this.state !== "up") return;
    this.counters.crashes++;
    this.log("error", "the whisper worker died; restarting it", { code, signal, sessions: this.handlers.size });
    this.state = "down";
    this.scheduleRestart();
  }

  /** Polls `stats`; kills a worker that has said nothing for `watchdogMs` (the exit restarts it). */
  private startWatchdog(): void {
    const limit = this.o.watchdogMs ?? 0;
    if (limit <= 0) return;
    this.lastHeardMs = performance.now();
    this.watchdog = setInterval(() => {
      if (this.state !== "up" || !this.child) return;
      if (performance.now() - this.lastHeardMs > limit) {
        this.counters.hung++;
        this.log("error", "the whisper worker stopped answering; killing it", { silentMs: limit });
        this.lastHeardMs = performance.now();
        this.child.kill("SIGKILL");
        return;
      }
      this.send({ type: "stats" });
    }, limit / 4);
    this.watchdog.unref?.();
  }

  private scheduleRestart(): void {
    const delay = Math.min(5000, this.o.restartBackoffMs * 2 ** this.failedAttempts);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state !== "down") return;
      this.spawnOnce().then(
        () => {
          if (this.state !== "down") return;
          this.state = "up";
          this.lastHeardMs = performance.now();
          this.failedAttempts = 0;
          this.counters.restarts++;
          this.log("warn", "the whisper worker is back", { sessions: this.handlers.size });
          for (const h of [...this.handlers.values()]) h.restarted();
        },
        (e: WhisperWorkerError) => {
          if (this.state !== "down") return;
          this.failedAttempts++;
          if (this.failedAttempts >= this.o.maxRestarts) {
            this.state = "lost";
            this.log("error", "the whisper worker could not be restarted; giving up", { error: e.message });
            for (const [key, h] of [...this.handlers]) {
              this.handlers.delete(key);
              h.lost(e.message);
            }
            return;
          }
          this.scheduleRestart();
        },
      );
    }, delay);
  }
}
