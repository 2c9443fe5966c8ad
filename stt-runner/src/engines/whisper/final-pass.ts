/**
 * The final pass, composed around an engine (Google, or failover over Google): each of its finals
 * is decoded again by the whisper worker (`offline`, beam 5) over the same audio (everything
 * since the previous final, kept here) and the final goes out with both texts: the engine's as
 * `text` and whisper's in `alternatives` (or the other way round with `prefer: "whisper"`).
 *
 * A final is held at most `timeoutMs` for whisper. When whisper is later than that (or the worker
 * is down, or the utterance is longer than whisper's 30 s window), the final goes out with the
 * engine's text alone and whisper's late answer is dropped: no correction event follows.
 * Finals, and the interims and switches that come after them, leave in the order they came.
 * Finals the whisper engine produced itself (after a failover) are not decoded twice.
 */
import type { RelayStart } from "@ozen/shared";
import { CallAudio } from "../call-audio.js";
import type { AudioBlock } from "../call-audio.js";
import type {
  Engine,
  EngineFailure,
  EngineFinal,
  EngineInterim,
  EngineListener,
  EngineSession,
  EngineSwitch,
} from "../engine.js";
import { readSettings, setting } from "@ozen/shared";
import type { SettingsEnv } from "@ozen/shared";
import { callHints, callLanguage } from "./config.js";
import type { OfflineResult, WhisperEngine } from "./engine.js";

const RATE = 8000;
/** Whisper hears 30 s at a time; a longer utterance is not re-decoded. */
const MAX_UTTERANCE_MS = 30_000;

export interface FinalPassConfig {
  /** How long a final may wait for whisper, ms. */
  readonly timeoutMs: number;
  /** Whose text is `text`: the engine's (`primary`, default) or whisper's when it has one. */
  readonly prefer: "primary" | "whisper";
  /** Most audio kept since the last final, s. */
  readonly bufferMaxS: number;
}

export const FINAL_PASS_SETTINGS = {
  OZEN_FINAL_PASS_TIMEOUT_MS: setting.number({
    description: "Most a Google final waits for whisper, ms; later, it goes out with Google's text alone.",
    default: 1000,
    min: 50,
    max: 30_000,
  }),
  OZEN_FINAL_PASS_PREFER: setting.choice({
    description: "Whose text is `text`: `google` (whisper's in `alternatives`) or `whisper` (Google's there).",
    values: ["google", "whisper"],
    default: "google",
  }),
} as const;

/** Reads and checks the final pass's settings; throws `SettingError`. */
export function loadFinalPassConfig(env: SettingsEnv): FinalPassConfig {
  const s = readSettings(FINAL_PASS_SETTINGS, env);
  return {
    timeoutMs: s.OZEN_FINAL_PASS_TIMEOUT_MS,
    prefer: s.OZEN_FINAL_PASS_PREFER === "google" ? "primary" : "whisper",
    bufferMaxS: 60,
  };
}

export interface FinalPassCounters {
  /** Finals sent to whisper. */
  requested: number;
  /** Finals that went out with whisper's text. */
  confirmed: number;
  /** ... whose whisper text differed from the engine's (after folding case and punctuation). */
  differed: number;
  /** Finals that went out without whisper: it was late, or failed, or the worker restarted. */
  timedOut: number;
  /** Finals not sent to whisper (worker down, utterance too long, audio no longer kept, empty). */
  skipped: number;
  /** Sum of the time finals were held for whisper, ms. */
  heldMsTotal: number;
}

type Item =
  | { kind: "final"; final: EngineFinal; pass: Promise<OfflineResult | undefined> | undefined; heldAtMs: number }
  | { kind: "interim"; interim: EngineInterim }
  | { kind: "failed"; failure: EngineFailure }
  | { kind: "switched"; s: EngineSwitch };

export class FinalPassEngine implements Engine {
  readonly name: string;
  readonly counters: FinalPassCounters = {
    requested: 0,
    confirmed: 0,
    differed: 0,
    timedOut: 0,
    skipped: 0,
    heldMsTotal: 0,
  };

  constructor(
    readonly inner: Engine,
    readonly whisper: WhisperEngine,
    readonly config: FinalPassConfig,
  ) {
    this.name = inner.name;
  }

  nameFor(call: RelayStart): string {
    return this.inner.nameFor?.(call) ?? this.inner.name;
  }

  open(call: RelayStart, listener: EngineListener): EngineSession {
    return new FinalPassSession(this, call, listener);
  }

  stats(): Record<string, number> {
    const prefixed = Object.fromEntries(
      Object.entries(this.counters).map(([k, v]) => [`finalPass${k[0]!.toUpperCase()}${k.slice(1)}`, v]),
    );
    return { ...this.inner.stats?.(), ...prefixed };
  }

  async close(): Promise<void> {
    await this.inner.close?.();
    if (this.inner !== (this.whisper as Engine)) await this.whisper.close();
  }
}

/** Folds case, punctuation and spacing, to tell whether two engines heard the same words. */
function fold(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, "")
    .replace(/\s+/g, " ")
    .trim();
}

class FinalPassSession implements EngineSession {
  private readonly inner: EngineSession;
  private readonly audio: CallAudio;
  private readonly queue: Item[] = [];
  private flushing: Promise<void> | undefined;
  private draining = false;
  private readonly language: string;
  private readonly hints: string[];

  constructor(
    private readonly e: FinalPassEngine,
    private readonly call: RelayStart,
    private readonly listener: EngineListener,
  ) {
    this.audio = new CallAudio(e.config.bufferMaxS * RATE);
    this.language = callLanguage(e.whisper.config, call.customParameters);
    this.hints = callHints(e.whisper.config, call);
    this.inner = e.inner.open(call, {
      interim: (interim) => this.enqueue({ kind: "interim", interim }),
      final: (final) => this.onFinal(final),
      failed: (failure) => this.enqueue({ kind: "failed", failure }),
      switched: (s) => this.enqueue({ kind: "switched", s }),
    });
  }

  /** The inner engine's commit point, but not past a final still held for whisper. */
  get committedSample(): number | undefined {
    const inner = this.inner.committedSample;
    const held = this.queue.find((i) => i.kind === "final");
    if (held && held.kind === "final") {
      const heldStart = Math.floor((held.final.audioStartMs * RATE) / 1000);
      return inner === undefined ? heldStart : Math.min(inner, heldStart);
    }
    return inner;
  }

  feed(pcm: Int16Array, startSample: number): void {
    this.inner.feed(this.audio.push(pcm, startSample), startSample);
  }

  async end(): Promise<void> {
    await this.inner.end();
    while (this.queue.length > 0) await this.flush();
  }

  abort(): void {
    if (this.inner.abort) this.inner.abort();
    else void this.inner.end();
  }

  private onFinal(final: EngineFinal): void {
    const startSample = Math.floor((final.audioStartMs * RATE) / 1000);
    const endSample = Math.ceil((final.audioEndMs * RATE) / 1000);
    const audio = this.utteranceAudio(startSample, endSample);
    this.audio.dropBefore(endSample);
    const c = this.e.counters;
    const own = final.engine === this.e.whisper.name;
    let pass: Promise<OfflineResult | undefined> | undefined;
    if (own) {
      // the whisper engine made it (after a failover): nothing to compare
    } else if (
      !this.e.whisper.worker.up ||
      !final.text.trim() ||
      final.audioEndMs - final.audioStartMs > MAX_UTTERANCE_MS ||
      audio === undefined
    ) {
      c.skipped++;
    } else {
      c.requested++;
      pass = this.e.whisper.decodeOffline({
        callSid: this.call.callSid,
        blocks: audio,
        language: this.language,
        hints: this.hints,
        timeoutMs: this.e.config.timeoutMs,
      });
    }
    this.enqueue({ kind: "final", final, pass, heldAtMs: performance.now() });
  }

  private enqueue(item: Item): void {
    this.queue.push(item);
    void this.flush();
  }

  /** Sends what is at the head of the queue, waiting (bounded) for a held final's whisper text. */
  private flush(): Promise<void> {
    if (!this.draining) this.flushing = this.drain();
    return this.flushing ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    // `draining` is cleared synchronously when nothing had to wait, so the next item starts a new drain
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const item = this.queue[0]!;
        if (item.kind === "final" && item.pass) {
          const result = await item.pass;
          this.queue.shift();
          this.emitFinal(item.final, result, performance.now() - item.heldAtMs);
          continue;
        }
        this.queue.shift();
        switch (item.kind) {
          case "final":
            this.listener.final(item.final);
            break;
          case "interim":
            // an interim that waited behind a final is stale when a newer one waits too
            if (!this.queue.some((i) => i.kind === "interim")) this.listener.interim(item.interim);
            break;
          case "failed":
            this.listener.failed(item.failure);
            break;
          case "switched":
            this.listener.switched?.(item.s);
            break;
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private emitFinal(final: EngineFinal, result: OfflineResult | undefined, heldMs: number): void {
    const c = this.e.counters;
    c.heldMsTotal += heldMs;
    if (!result) {
      c.timedOut++;
      this.listener.final(final);
      return;
    }
    c.confirmed++;
    if (fold(result.text) !== fold(final.text)) c.differed++;
    const whisperName = this.e.whisper.name;
    const primaryName = final.engine ?? this.e.inner.name;
    if (this.e.config.prefer === "whisper" && result.text) {
      const { confidence: _confidence, ...rest } = final;
      this.listener.final({
        ...rest,
        text: result.text,
        engine: whisperName,
        alternatives: [{ engine: primaryName, text: final.text }, ...(final.alternatives ?? [])],
      });
      return;
    }
    this.listener.final({
      ...final,
      alternatives: [...(final.alternatives ?? []), { engine: whisperName, text: result.text }],
    });
  }

  /** The utterance's audio, or undefined when its start is no longer kept (or it is empty). */
  private utteranceAudio(from: number, to: number): AudioBlock[] | undefined {
    const first = this.audio.firstSample;
    if (to <= from || first === undefined || first > from + RATE / 10) return undefined;
    const blocks = this.audio.slice(from, to);
    return blocks.length > 0 ? blocks : undefined;
  }
}
