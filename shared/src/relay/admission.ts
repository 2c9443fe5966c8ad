/**
 * Admission by capacity, both sides, sans-IO: the runner takes at most `maxCalls` calls (each holds
 * one engine session) and refuses a new call's `start` beyond that (close 4007, `at_capacity`);
 * the edge keeps the call's audio, redials through the front end with backoff, and tells the
 * agent when no runner took the call within a bound (`engine.switched` to `none`, reason
 * `capacity`), then again when one does (from `none`, reason `admitted`).
 *
 * Only authenticated starts are counted: a start reaches `admitCall` after the upgrade's relay
 * credential was checked and `admitStart` took it, so a stranger cannot fill a runner.
 */
import { relayClosing } from "./receiver.js";
import type { RelayClosing, RelayReceiverCounters } from "./receiver.js";

/** The counters admission adds to the runner's relay counters. */
export type AdmissionCounters = Pick<RelayReceiverCounters, "startsAtCapacity">;

/**
 * Whether the runner takes a new call when it holds `heldCalls` (attached, or detached within
 * their grace: each has an engine session open) and may hold `maxCalls`: undefined when it does,
 * else how to close the socket (counted in `startsAtCapacity`). A call the runner holds already
 * (the edge resuming it) is not a new call and never comes here.
 */
export function admitCall(heldCalls: number, maxCalls: number, counters: AdmissionCounters): RelayClosing | undefined {
  if (heldCalls < maxCalls) return undefined;
  counters.startsAtCapacity++;
  return relayClosing(
    "at_capacity",
    `this runner holds ${heldCalls} calls, its most (OZEN_MAX_CALLS ${maxCalls}); redial: the front end routes to another instance`,
  );
}

/** Whether a runner holding `heldCalls` of `maxCalls` is ready for another call (`/readyz`). */
export function hasRoom(heldCalls: number, maxCalls: number): boolean {
  return heldCalls < maxCalls;
}

/** What the runner's engine and its instance's cores are, for the default of `OZEN_MAX_CALLS`. */
export interface CapacityBasis {
  /** The engine the runner chose (`google`, `whisper`, `null`, ...). */
  readonly engine: string;
  /** The whisper worker's model (`WHISPER_MODEL`), for `whisper`. */
  readonly whisperModel?: string;
  /**
   * The model's parameters when `WHISPER_MODEL` is a CTranslate2 directory whose `model.bin` could
   * be read (the runner reads its variable headers): then its size decides, not the name.
   */
  readonly whisperModelParameters?: number;
  /** Cores the instance has (Cloud Run's vCPU limit; `os.availableParallelism()` in the process). */
  readonly cpus: number;
}

/** Whisper's model sizes, smallest first. */
export type WhisperSizeClass = "tiny" | "base" | "small" | "medium" | "large";

/**
 * The most parameters of each size but the largest: about halfway (geometrically) between the
 * published sizes, tiny 39 M, base 74 M, small 244 M, medium 769 M, large 1550 M (a CTranslate2
 * conversion's variables hold 37.8 M for tiny.en and 72.6 M for base). A parameter count does not
 * depend on the conversion's quantization, which a file's bytes do: tiny in float16 and base in
 * int8 are both about 75 MB.
 */
const WHISPER_MAX_PARAMETERS: readonly (readonly [WhisperSizeClass, number])[] = [
  ["tiny", 55e6],
  ["base", 135e6],
  ["small", 430e6],
  ["medium", 1100e6],
];

/**
 * Whisper's size for a model of `parameters` (large-v3-turbo, 809 M: a large encoder with four
 * decoder layers, counts as medium).
 */
export function whisperSizeClass(parameters: number): WhisperSizeClass {
  for (const [size, most] of WHISPER_MAX_PARAMETERS) if (parameters <= most) return size;
  return "large";
}

/** Calls a Google-engine runner takes by default: the engine works remotely; Cloud Run's old default concurrency. */
export const GOOGLE_MAX_CALLS = 50;

/**
 * The default of `OZEN_MAX_CALLS`: what one instance holds in real time. Whisper on CPU, from
 * `ozen bench stt` on a 2-core machine (docs/benchmarks.md): `tiny.en` held one real-time call
 * per core (max_realtime_calls 1 on 2 loaded cores; two at once missed the 2 s TTFP p95 by 44 ms),
 * `base` and larger models spend 0.9-1.1 CPU s per audio s for one call with TTFP p95 of 5-7 s,
 * so one call per two cores; at least one call either way. Google and the others: `GOOGLE_MAX_CALLS`.
 * Tiny: `whisperModelParameters` when known (a model directory), else the model's name.
 */
export function defaultMaxCalls(b: CapacityBasis): number {
  const cpus = Math.max(1, Math.floor(b.cpus));
  if (b.engine !== "whisper") return GOOGLE_MAX_CALLS;
  const tiny =
    b.whisperModelParameters !== undefined
      ? whisperSizeClass(b.whisperModelParameters) === "tiny"
      : /(^|[/-])tiny(\.en)?$/.test(b.whisperModel ?? "");
  return tiny ? cpus : Math.max(1, Math.floor(cpus / 2));
}

export interface RunnerWaitOptions {
  /** How long a call may go unadmitted for capacity before the agent is told, ms. */
  readonly noticeAfterMs: number;
}

/** What to tell the agent about the call's runner: none takes it, or one took it after all. */
export type RunnerWaitNotice =
  { readonly kind: "waiting"; readonly reason: "capacity" } | { readonly kind: "admitted"; readonly waitedMs: number };

/**
 * The edge's side for one call: fed refusals (`refused`: a 4007 close, or the front end's 429/503
 * on the upgrade) and admissions (`admitted`: the first ack on a socket), it says when to tell
 * the agent that no runner takes the call, and that one did. Pure: the adapter owns the timer.
 */
export class RunnerWait {
  /** Wall time of the first refusal of the current wait, ms; undefined while admitted. */
  private waitingSinceMs: number | undefined;
  private noticed = false;
  /** Refusals for capacity, over the call. */
  refusals = 0;

  constructor(private readonly o: RunnerWaitOptions) {}

  /** Whether the call is waiting for a runner with room. */
  get waiting(): boolean {
    return this.waitingSinceMs !== undefined;
  }

  /** Wall time, ms, at which `tick` has a notice to give; undefined when none is due. */
  get nextDueMs(): number | undefined {
    if (this.waitingSinceMs === undefined || this.noticed) return undefined;
    return this.waitingSinceMs + this.o.noticeAfterMs;
  }

  /** A runner refused the call for capacity at `nowMs`. */
  refused(nowMs: number): void {
    this.refusals++;
    this.waitingSinceMs ??= nowMs;
  }

  /** At `nowMs`: the notice that no runner takes the call, once per wait, when its bound is over. */
  tick(nowMs: number): RunnerWaitNotice | undefined {
    const due = this.nextDueMs;
    if (due === undefined || nowMs < due) return undefined;
    this.noticed = true;
    return { kind: "waiting", reason: "capacity" };
  }

  /** A runner took the call at `nowMs`: the notice that it did, when the agent was told it waited. */
  admitted(nowMs: number): RunnerWaitNotice | undefined {
    const since = this.waitingSinceMs;
    const noticed = this.noticed;
    this.waitingSinceMs = undefined;
    this.noticed = false;
    if (since === undefined || !noticed) return undefined;
    return { kind: "admitted", waitedMs: nowMs - since };
  }
}
