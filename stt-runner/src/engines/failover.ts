/**
 * Failover, composed around two engines (livekit/agents' FallbackAdapter is the pattern): each
 * call starts on the primary (Google) and moves to the fallback (the whisper worker) mid-call
 * when the primary fails it:
 * - the primary session's `failed` (its retry budget is spent), or
 * - no result from the primary while speech is present: `noResultMs` of call audio that a cheap
 *   energy VAD calls speech, with no interim or final in between.
 * The fallback starts at the primary's commit point (`resumeFromMs`: the end of its last final)
 * and is fed the audio since then, kept here, so nothing is lost and nothing doubled; the
 * listener hears `switched`. The primary is then dropped: nothing it says later is forwarded.
 *
 * A circuit breaker (breaker.ts) counts failures across calls: when it is open, new calls start
 * on the fallback; after the cool-down one call probes the primary.
 */
import type { RelayStart } from "@ozen/shared";
import { CircuitBreaker } from "./breaker.js";
import { CallAudio } from "./call-audio.js";
import type { Admission, BreakerOptions } from "./breaker.js";
import { readSettings, setting } from "@ozen/shared";
import type { SettingsEnv } from "@ozen/shared";
import type { Engine, EngineFailure, EngineListener, EngineSession } from "./engine.js";

const RATE = 8000;

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface FailoverConfig {
  /** Call audio judged speech with no primary result that moves the call, ms; 0 turns the check off. */
  readonly noResultMs: number;
  /** RMS level at or above which a block counts as speech, dBFS. */
  readonly speechDbfs: number;
  /** Most audio kept since the primary's last final, s (older audio is dropped and counted). */
  readonly bufferMaxS: number;
  readonly breaker: BreakerOptions;
}

export const FAILOVER_SETTINGS = {
  OZEN_FAILOVER_NO_RESULT_MS: setting.number({
    description:
      "Call audio judged speech with no Google result (interim or final) that moves the call to whisper, ms; 0: off.",
    default: 5000,
    min: 0,
    max: 600_000,
  }),
  OZEN_FAILOVER_SPEECH_DBFS: setting.number({
    description: "RMS level (per 100 ms block) at or above which audio counts as speech for that check, dBFS.",
    default: -40,
    min: -90,
    max: 0,
  }),
  OZEN_FAILOVER_BUFFER_MAX_S: setting.number({
    description:
      "Most audio kept since Google's last final, replayed to whisper at a switch, s (older is dropped, counted).",
    default: 120,
    min: 5,
    max: 600,
  }),
  OZEN_BREAKER_FAILURES: setting.number({
    description: "Google failures (failed calls, no-result switches) within the window that open the circuit breaker.",
    default: 3,
    min: 1,
    max: 1000,
  }),
  OZEN_BREAKER_WINDOW_MS: setting.number({
    description: "The circuit breaker's window, ms.",
    default: 60_000,
    min: 1000,
    max: 3_600_000,
  }),
  OZEN_BREAKER_COOLDOWN_MS: setting.number({
    description:
      "While open, new calls start on whisper; after this, one call probes Google (its first result closes the breaker), ms.",
    default: 60_000,
    min: 100,
    max: 3_600_000,
  }),
} as const;

/** Reads and checks the failover and breaker settings; throws `SettingError`. */
export function loadFailoverConfig(env: SettingsEnv): FailoverConfig {
  const s = readSettings(FAILOVER_SETTINGS, env);
  return {
    noResultMs: s.OZEN_FAILOVER_NO_RESULT_MS,
    speechDbfs: s.OZEN_FAILOVER_SPEECH_DBFS,
    bufferMaxS: s.OZEN_FAILOVER_BUFFER_MAX_S,
    breaker: {
      failures: s.OZEN_BREAKER_FAILURES,
      windowMs: s.OZEN_BREAKER_WINDOW_MS,
      cooldownMs: s.OZEN_BREAKER_COOLDOWN_MS,
    },
  };
}

/** RMS level of a block, dBFS (-Infinity for digital silence). */
export function blockDbfs(pcm: Int16Array): number {
  if (pcm.length === 0) return -Infinity;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
  return 10 * Math.log10(sum / pcm.length / (32768 * 32768));
}

export interface FailoverCounters {
  callsOnPrimary: number;
  callsOnFallback: number;
  /** Mid-call moves because the primary session failed. */
  switchesFailed: number;
  /** Mid-call moves because the primary said nothing while speech was present. */
  switchesNoResult: number;
  /** Audio fed to the fallback from the buffer at a switch, ms. */
  replayedMs: number;
  /** Audio dropped from the buffer because it outgrew `bufferMaxS`, ms. */
  bufferDroppedMs: number;
}

export class FailoverEngine implements Engine {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  private readonly decided = new Map<string, Admission>();
  readonly counters: FailoverCounters = {
    callsOnPrimary: 0,
    callsOnFallback: 0,
    switchesFailed: 0,
    switchesNoResult: 0,
    replayedMs: 0,
    bufferDroppedMs: 0,
  };

  constructor(
    readonly primary: Engine,
    readonly fallback: Engine,
    readonly config: FailoverConfig,
    private readonly now: () => number = () => Date.now(),
    private readonly log: Log = () => {},
  ) {
    this.name = primary.name;
    this.breaker = new CircuitBreaker(config.breaker);
  }

  /** Where a new call goes: the breaker decides, but never onto a fallback that cannot take calls. */
  private admit(): Admission {
    if (this.fallback.available === false) return { to: "primary", probe: false };
    return this.breaker.admit(this.now());
  }

  nameFor(call: RelayStart): string {
    const a = this.decided.get(call.callSid) ?? this.admit();
    this.decided.set(call.callSid, a);
    return a.to === "primary" ? this.primary.name : this.fallback.name;
  }

  open(call: RelayStart, listener: EngineListener): EngineSession {
    const admission = this.decided.get(call.callSid) ?? this.admit();
    this.decided.delete(call.callSid);
    if (admission.to === "fallback") {
      this.counters.callsOnFallback++;
      this.log("warn", "circuit open: call starts on the fallback engine", {
        callSid: call.callSid,
        engine: this.fallback.name,
      });
    } else this.counters.callsOnPrimary++;
    return new FailoverSession(this, call, listener, admission);
  }

  stats(): Record<string, number> {
    const state = this.breaker.state(this.now());
    const prefixed = (p: string, s: Record<string, number> | undefined) =>
      Object.fromEntries(Object.entries(s ?? {}).map(([k, v]) => [p + k[0]!.toUpperCase() + k.slice(1), v]));
    return {
      ...this.counters,
      ...prefixed("breaker", { ...this.breaker.counters }),
      breakerOpen: state === "closed" ? 0 : state === "open" ? 1 : 0.5,
      ...prefixed("primary", this.primary.stats?.()),
      ...prefixed("fallback", this.fallback.stats?.()),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close?.(), this.fallback.close?.()]);
  }

  /** Internal: the clock the sessions and the breaker share. */
  clock(): number {
    return this.now();
  }

  /** Internal. */
  logEvent(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
    this.log(level, msg, fields);
  }
}

class FailoverSession implements EngineSession {
  private current!: EngineSession;
  private onFallback: boolean;
  private primarySession: EngineSession | undefined;
  private readonly audio: CallAudio;
  private speechMsSinceResult = 0;
  private gotPrimaryResult = false;
  private verdict = false;
  private ending = false;

  constructor(
    private readonly e: FailoverEngine,
    private readonly call: RelayStart,
    private readonly listener: EngineListener,
    private readonly admission: Admission,
  ) {
    this.audio = new CallAudio(e.config.bufferMaxS * RATE);
    if (admission.to === "fallback") {
      this.onFallback = true;
      this.current = e.fallback.open(call, this.fallbackListener());
    } else {
      this.onFallback = false;
      const primary = e.primary.open(call, this.primaryListener());
      if (this.onFallback) {
        // it failed while opening: switchToFallback already put the fallback in place
        void primary.end().catch(() => {});
      } else {
        this.primarySession = primary;
        this.current = primary;
      }
    }
  }

  get committedSample(): number | undefined {
    return this.current.committedSample;
  }

  feed(pcm: Int16Array, startSample: number): void {
    if (this.onFallback) {
      this.current.feed(pcm, startSample);
      return;
    }
    const dropped = this.audio.droppedSamples;
    const copy = this.audio.push(pcm, startSample);
    this.e.counters.bufferDroppedMs += ((this.audio.droppedSamples - dropped) * 1000) / RATE;
    this.current.feed(copy, startSample);
    const cfg = this.e.config;
    // feed() may have failed the primary over; a fallback that cannot take calls is no way out
    if (this.onFallback || cfg.noResultMs <= 0 || this.e.fallback.available === false) return;
    if (blockDbfs(pcm) >= cfg.speechDbfs) {
      this.speechMsSinceResult += (pcm.length * 1000) / RATE;
      if (this.speechMsSinceResult >= cfg.noResultMs) {
        this.e.counters.switchesNoResult++;
        this.switchToFallback(
          `no_result: ${Math.round(this.speechMsSinceResult)} ms of speech without a result from ${this.e.primary.name}`,
          this.primaryCommittedMs(),
        );
      }
    }
  }

  async end(): Promise<void> {
    this.ending = true;
    // a switch while the primary drains hands the end on to the fallback
    for (;;) {
      const s = this.current;
      await s.end();
      if (s === this.current) break;
    }
    if (this.admission.to === "primary" && this.admission.probe && !this.verdict) this.e.breaker.release(true);
  }

  abort(): void {
    this.ending = true;
    if (this.current.abort) this.current.abort();
    else void this.current.end();
  }

  private primaryCommittedMs(): number {
    return ((this.primarySession?.committedSample ?? this.audio.firstSample ?? 0) * 1000) / RATE;
  }

  private primaryListener(): EngineListener {
    const isLive = () => !this.onFallback;
    const name = this.e.primary.name;
    return {
      interim: (r) => {
        if (!isLive()) return;
        this.onPrimaryResult();
        this.listener.interim(r);
      },
      final: (r) => {
        if (!isLive()) return;
        this.onPrimaryResult();
        // audio before the primary's commit point has its words: the fallback would not need it
        const committed = this.primarySession?.committedSample;
        if (committed !== undefined) this.audio.dropBefore(committed);
        this.listener.final({ ...r, engine: r.engine ?? name });
      },
      failed: (f: EngineFailure) => {
        if (!isLive()) return;
        if (this.e.fallback.available === false) {
          // nowhere to go: the call goes on without transcripts, as with no fallback at all
          this.e.breaker.failure(this.e.clock(), this.isUndecidedProbe());
          this.verdict = true;
          this.listener.failed(f);
          return;
        }
        this.e.counters.switchesFailed++;
        this.switchToFallback(`${f.code}: ${f.message}`, f.resumeFromMs);
      },
    };
  }

  private fallbackListener(): EngineListener {
    const name = this.e.fallback.name;
    return {
      interim: (r) => this.listener.interim(r),
      final: (r) => this.listener.final({ ...r, engine: r.engine ?? name }),
      // the fallback has no fallback: the call goes on without transcripts
      failed: (f) => this.listener.failed(f),
    };
  }

  private isUndecidedProbe(): boolean {
    return this.admission.to === "primary" && this.admission.probe && !this.verdict;
  }

  private onPrimaryResult(): void {
    this.speechMsSinceResult = 0;
    if (!this.gotPrimaryResult) {
      this.gotPrimaryResult = true;
      if (this.admission.to === "primary" && this.admission.probe) {
        this.verdict = true;
        this.e.breaker.success(this.e.clock(), true);
      }
    }
  }

  private switchToFallback(reason: string, resumeFromMs: number): void {
    if (this.onFallback) return;
    this.onFallback = true;
    const probe = this.isUndecidedProbe();
    this.verdict = true;
    this.e.breaker.failure(this.e.clock(), probe);
    const from = this.e.primary.name;
    const to = this.e.fallback.name;
    this.e.logEvent("warn", "moving the call to the fallback engine", {
      callSid: this.call.callSid,
      from,
      to,
      reason,
      resumeFromMs,
    });
    // the primary is dropped: its session is ended in the background and nothing it says is forwarded
    const old = this.primarySession;
    if (old) {
      if (old.abort) old.abort();
      else void old.end().catch(() => {});
    }
    this.listener.switched?.({ from, to, reason, resumeFromMs });
    const fallback = this.e.fallback.open(this.call, this.fallbackListener());
    this.current = fallback;
    for (const b of this.audio.slice(Math.round((resumeFromMs * RATE) / 1000))) {
      fallback.feed(b.pcm, b.startSample);
      this.e.counters.replayedMs += (b.pcm.length * 1000) / RATE;
    }
    this.audio.clear();
  }
}
