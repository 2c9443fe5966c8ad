/**
 * One call on the whisper worker (a `stream` session): call audio goes to the worker as it comes,
 * its partials become interims (the LocalAgreement-2 prefix as a stable segment, the rest as the
 * tail; punctuation removed, the fast profile) and its finals finals, in call audio time.
 *
 * The audio since the last final is kept (bounded by `replayMaxS`): when the worker dies and is
 * restarted, the session opens again on the new process and replays exactly that audio, so the
 * call goes on with nothing lost (audio after the last final is heard again) and nothing doubled
 * (audio before it is not). Audio that arrives while the worker is down is kept the same way.
 */
import { CallAudio } from "../call-audio.js";
import type { EngineListener, EngineSession } from "../engine.js";
import { withoutPunctuation } from "./partial-text.js";
import type { WorkerMessage } from "./protocol.js";
import type { WhisperWorker, WorkerSessionHandler } from "./worker.js";

const RATE = 8000;
/** Replayed audio goes out in frames of this many samples (1 s). */
const REPLAY_FRAME_SAMPLES = RATE;
/** Characters of the call's last finals given to a re-opened session as its prompt. */
const PROMPT_CHARS = 200;

export interface WhisperSessionOptions {
  readonly worker: WhisperWorker;
  readonly key: string;
  readonly listener: EngineListener;
  /** Language code the worker forces (`he`, `en`). */
  readonly language: string;
  readonly hints: readonly string[];
  /** Most audio kept for a replay, s; older audio without a final is dropped (and counted). */
  readonly replayMaxS: number;
  /** How long `end()` waits for the worker's last final, ms. */
  readonly endTimeoutMs: number;
  /** Name put on finals (`whisper`). */
  readonly engineName: string;
  /** Called once the session is over (the engine forgets it). */
  readonly onDone?: () => void;
}

export interface WhisperSessionStats {
  opens: number;
  /** Re-opens on a restarted worker. */
  reopens: number;
  replayedMs: number;
  /** Audio dropped from the replay buffer because it outgrew `replayMaxS`, ms. */
  replayDroppedMs: number;
  partials: number;
  finals: number;
  /** Finals the worker repeated for audio already final (never forwarded). */
  duplicateFinals: number;
}

/** Every counter of a session at zero (a new session, or an engine's sum over ended ones). */
export function newWhisperSessionStats(): WhisperSessionStats {
  return {
    opens: 0,
    reopens: 0,
    replayedMs: 0,
    replayDroppedMs: 0,
    partials: 0,
    finals: 0,
    duplicateFinals: 0,
  };
}

export class WhisperSession implements EngineSession, WorkerSessionHandler {
  private readonly audio: CallAudio;
  private lastFinalEndSample: number | undefined;
  private fedUntilSample = 0;
  private promptTail = "";
  private ending = false;
  private done = false;
  private endResolve: (() => void) | undefined;
  private endTimer: ReturnType<typeof setTimeout> | undefined;
  readonly stats: WhisperSessionStats = newWhisperSessionStats();

  constructor(private readonly o: WhisperSessionOptions) {
    this.audio = new CallAudio(o.replayMaxS * RATE);
    o.worker.register(o.key, this);
    if (o.worker.gone) {
      queueMicrotask(() => this.lost("the whisper worker is not running"));
      return;
    }
    this.open(false);
  }

  get key(): string {
    return this.o.key;
  }

  /** End of the last final (call samples); before any final, the first sample fed. */
  get committedSample(): number {
    return this.lastFinalEndSample ?? this.audio.firstSample ?? this.fedUntilSample;
  }

  feed(pcm: Int16Array, startSample: number): void {
    if (this.ending || this.done) return;
    const copy = this.audio.push(pcm, startSample);
    this.stats.replayDroppedMs = (this.audio.droppedSamples * 1000) / RATE;
    this.fedUntilSample = startSample + pcm.length;
    this.o.worker.sendAudio(this.o.key, startSample, copy);
  }

  end(): Promise<void> {
    if (this.done) return Promise.resolve();
    if (this.ending) return new Promise((r) => this.whenDone(r));
    this.ending = true;
    return new Promise((resolve) => {
      this.whenDone(resolve);
      this.o.worker.send({ type: "close", key: this.o.key });
      this.armEndTimer();
    });
  }

  /** Stops at once: no last final, nothing more is said (failover hands the call on, tests). */
  abort(): void {
    if (this.done) return;
    this.o.worker.send({ type: "close", key: this.o.key });
    this.finish();
  }

  // ---- worker events ----

  message(m: WorkerMessage): void {
    if (this.done) return;
    switch (m.type) {
      case "partial": {
        // the fast profile: no punctuation while the words are live (partial-text.ts)
        const text = withoutPunctuation(m.text);
        if (!text) return;
        const stable = withoutPunctuation(m.stable);
        const tail = stable && text.startsWith(stable) ? text.slice(stable.length).trim() : text;
        const segments = stable && text.startsWith(stable) ? [{ text: stable, stability: 1 }] : [];
        if (tail) segments.push({ text: tail, stability: 0 });
        this.stats.partials++;
        this.o.listener.interim({ segments, audioEndMs: m.audio_end_ms });
        return;
      }
      case "final": {
        const endSample = Math.round(m.audio_end_ms * (RATE / 1000));
        if (this.lastFinalEndSample !== undefined && endSample <= this.lastFinalEndSample) {
          this.stats.duplicateFinals++;
          return;
        }
        const startMs = Math.max(m.audio_start_ms, ((this.lastFinalEndSample ?? 0) * 1000) / RATE);
        this.lastFinalEndSample = endSample;
        this.audio.dropBefore(endSample);
        this.stats.finals++;
        const text = m.text.trim();
        if (text) this.promptTail = (this.promptTail + " " + text).slice(-PROMPT_CHARS).trim();
        this.o.listener.final({ text, audioStartMs: startMs, audioEndMs: Math.max(startMs, m.audio_end_ms) });
        return;
      }
      case "closed":
        if (this.ending) this.finish();
        return;
      case "error":
        // counted and logged by the worker client; a decode error costs this utterance, not the call
        return;
      default:
        return;
    }
  }

  restarted(): void {
    if (this.done) return;
    this.open(true);
    if (!this.ending) return;
    this.o.worker.send({ type: "close", key: this.o.key });
    this.armEndTimer(); // the new process hears the call's tail again: it gets the full wait
  }

  lost(reason: string): void {
    if (this.done) return;
    const resumeFromMs = (this.committedSample * 1000) / RATE;
    const ending = this.ending;
    this.finish();
    if (!ending) this.o.listener.failed({ code: "whisper_worker_lost", message: reason, resumeFromMs });
  }

  // ---- internals ----

  private open(replay: boolean): void {
    const sent = this.o.worker.send({
      type: "open",
      key: this.o.key,
      mode: "stream",
      language: this.o.language,
      hints: [...this.o.hints],
      ...(this.promptTail ? { prompt: this.promptTail } : {}),
    });
    if (!sent) return; // the worker is down: restarted() opens again and replays
    if (replay) this.stats.reopens++;
    else this.stats.opens++;
    if (!replay) return;
    for (const b of this.audio.slice(this.lastFinalEndSample ?? 0)) {
      for (let i = 0; i < b.pcm.length; i += REPLAY_FRAME_SAMPLES) {
        const part = b.pcm.subarray(i, Math.min(b.pcm.length, i + REPLAY_FRAME_SAMPLES));
        this.o.worker.sendAudio(this.o.key, b.startSample + i, part);
        this.stats.replayedMs += (part.length * 1000) / RATE;
      }
    }
  }

  /**
   * `end()` gives the worker `endTimeoutMs` for the last final. A worker that is down (died, or
   * killed by the watchdog) when that runs out is not given up on: `restarted()` replays the
   * audio since the last final, closes again and re-arms this; `lost()` ends the wait when the
   * worker cannot be brought back. Otherwise a call hanging up while its worker restarts lost
   * its last final.
   */
  private armEndTimer(): void {
    if (this.endTimer) clearTimeout(this.endTimer);
    this.endTimer = setTimeout(() => {
      this.endTimer = undefined;
      if (!this.o.worker.up && !this.o.worker.gone) return; // restarting: restarted() re-arms
      this.finish();
    }, this.o.endTimeoutMs);
  }

  private whenDone(fn: () => void): void {
    const prev = this.endResolve;
    this.endResolve = prev ? () => (prev(), fn()) : fn;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.endTimer) clearTimeout(this.endTimer);
    this.o.worker.unregister(this.o.key, this);
    this.audio.clear();
    this.o.onDone?.();
    this.endResolve?.();
    this.endResolve = undefined;
  }
}
