/**
 * The measurements of `ozen bench stt`, as pure functions of what a call produced: the wall time
 * each 20 ms frame was sent, the transcript results (partials and finals with their arrival time
 * and audio span) and the reference speech of the file. Engine-neutral: the ozen path and the
 * WhisperLive anchor are reduced to the same `Observation`s and measured by the same code.
 *
 * Definitions (all times ms):
 * - Reference speech: Silero VAD segments of the file (no padding); a **turn** is a run of them
 *   with gaps under `TURN_GAP_MS` (a shorter pause is inside a turn).
 * - The wall time of audio position p is when the frame holding p was sent: the earliest any
 *   system could have heard it.
 * - **TTFP** (per turn): the first result (partial or final) with text that arrived after the
 *   turn's onset, reaches into the turn (`audioEndMs > turn.startMs`) and differs from the text
 *   shown just before it; minus the onset's wall time.
 * - **TTFS** (per turn, pipecat stt-benchmark's definition: real end of speech to the last final
 *   segment): the arrival of the last final whose audio span overlaps the turn, minus the wall
 *   time of the turn's end. A turn is finalised only when a final reaches its end (within
 *   `END_TOLERANCE_MS`); one that is not counts at the moment the session closed (a lower bound)
 *   and is reported as unfinalised.
 * - **Partial interval**: time between consecutive partials with new text within one turn
 *   (a partial belongs to the turn its `audioEndMs` falls in).
 * - **Turn trace** (the details file): per turn, when its first text came (ms after the onset),
 *   when each of its partials with new text came (ms after the onset), when its last final came
 *   (ms after the turn's end) and whether a final reached its end.
 */
import { percentile } from "@ozen/shared";

/** Pauses at least this long separate turns. */
export const TURN_GAP_MS = 1000;
export const FRAME_MS = 20;
/** A final "reaches" a turn's end when its audio ends at most this much before it. */
export const END_TOLERANCE_MS = 500;

export interface Turn {
  readonly startMs: number;
  readonly endMs: number;
}

/** One transcript result as the listener saw it. */
export interface Observation {
  readonly kind: "partial" | "final";
  /** Wall time it arrived (epoch ms). */
  readonly atMs: number;
  /** Call audio span it covers; start unknown for some partials. */
  readonly audioStartMs?: number;
  readonly audioEndMs: number;
  readonly text: string;
  /** Wall time it left the runner (epoch ms; the same as `atMs` for the edge's event log). */
  readonly runnerAtMs?: number;
  /** Its `latencyMs`: the runner's send time minus the arrival there of the audio it reaches. */
  readonly latencyMs?: number;
}

/** One call (or anchor session) of one file. */
export interface CallTrace {
  /** Wall time (epoch ms) each 20 ms frame was sent, by frame index. */
  readonly frameSentAtMs: readonly number[];
  readonly observations: readonly Observation[];
  /** Wall time the session ended (unfinalised turns count to here). */
  readonly closedAtMs: number;
}

/** What one turn saw, for the details file (all times ms, rounded). */
export interface TurnTrace {
  readonly start_ms: number;
  readonly end_ms: number;
  /** First text after the onset (the TTFP); null when none came. */
  readonly first_text_ms: number | null;
  /** Each partial with new text, ms after the onset. */
  readonly partial_ms: number[];
  /** The turn's last final, ms after the turn's end (the TTFS); null when no final covered it. */
  readonly final_ms: number | null;
  readonly finalised: boolean;
  /** Where the last final's time went (see `FinalPath`); null without a final or the times. */
  readonly final_path: FinalPath | null;
}

/**
 * The turn's last final from the end of speech to the runner's send, ms, in three legs that add up
 * to its `final_ms` (the edge's event log times events by the runner's clock): the audio the final
 * covers past the turn's end (the engine's end-of-speech padding), that audio's way from the
 * caller to the runner (the edge's 100 ms blocks and the relay), and the runner's own time
 * (engine and transcript policy: the event's `latencyMs`).
 */
export interface FinalPath {
  readonly audio_past_end_ms: number;
  readonly to_runner_ms: number;
  readonly in_runner_ms: number;
}

export interface CallMeasures {
  readonly ttfpMs: number[];
  readonly ttfsMs: number[];
  readonly partialIntervalsMs: number[];
  /** Turns no result reached (no TTFP). */
  readonly turnsWithoutResult: number;
  /** Turns no final covered (their TTFS is the close bound). */
  readonly turnsUnfinalised: number;
  readonly turns: number;
  readonly turnTraces: TurnTrace[];
}

/** Turns from reference speech segments `[startMs, endMs]`: segments closer than `gapMs` merge. */
export function turnsFromSpeech(speech: readonly (readonly [number, number])[], gapMs = TURN_GAP_MS): Turn[] {
  const sorted = [...speech].filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const turns: { startMs: number; endMs: number }[] = [];
  for (const [s, e] of sorted) {
    const last = turns[turns.length - 1];
    if (last && s - last.endMs < gapMs) last.endMs = Math.max(last.endMs, e);
    else turns.push({ startMs: s, endMs: e });
  }
  return turns;
}

/** Wall time at which audio position `ms` had been sent (the frame holding it). */
export function wallAt(frameSentAtMs: readonly number[], ms: number): number {
  if (frameSentAtMs.length === 0) throw new Error("no frame was sent");
  const i = Math.min(frameSentAtMs.length - 1, Math.max(0, Math.floor(ms / FRAME_MS)));
  return frameSentAtMs[i]!;
}

/** TTFP, TTFS and partial intervals of one call against its reference turns. */
export function measureCall(turns: readonly Turn[], trace: CallTrace): CallMeasures {
  const obs = [...trace.observations].sort((a, b) => a.atMs - b.atMs);
  const ttfpMs: number[] = [];
  const ttfsMs: number[] = [];
  let turnsWithoutResult = 0;
  let turnsUnfinalised = 0;
  const firstText: (number | null)[] = [];
  const finalAt: (number | null)[] = [];
  const finalised: boolean[] = [];
  const finalPaths: (FinalPath | null)[] = [];

  for (const turn of turns) {
    const onset = wallAt(trace.frameSentAtMs, turn.startMs);
    const end = wallAt(trace.frameSentAtMs, turn.endMs);
    let shown = "";
    let first: number | undefined;
    for (const o of obs) {
      const text = o.text.trim();
      if (o.atMs >= onset && text && o.audioEndMs > turn.startMs && text !== shown) {
        first = o.atMs;
        break;
      }
      if (text) shown = text;
    }
    if (first === undefined) turnsWithoutResult++;
    else ttfpMs.push(first - onset);
    firstText.push(first === undefined ? null : Math.round(first - onset));

    let last: Observation | undefined; // the turn's last final (obs is in arrival order)
    let reachesEnd = false;
    for (const o of obs) {
      if (o.kind !== "final" || !o.text.trim()) continue;
      const start = o.audioStartMs ?? 0;
      if (start < turn.endMs && o.audioEndMs > turn.startMs) {
        last = o;
        if (o.audioEndMs >= turn.endMs - END_TOLERANCE_MS) reachesEnd = true;
      }
    }
    const lastFinal = last?.atMs;
    finalPaths.push(last ? finalPath(trace.frameSentAtMs, turn, last) : null);
    if (lastFinal === undefined || !reachesEnd) {
      turnsUnfinalised++;
      ttfsMs.push(trace.closedAtMs - end);
    } else ttfsMs.push(lastFinal - end);
    finalAt.push(lastFinal === undefined ? null : Math.round(lastFinal - end));
    finalised.push(lastFinal !== undefined && reachesEnd);
  }

  const partialIntervalsMs: number[] = [];
  const partialsByTurn = turns.map((): number[] => []);
  const lastByTurn = new Map<number, { atMs: number; text: string }>();
  for (const o of obs) {
    if (o.kind !== "partial" || !o.text.trim()) continue;
    const t = turnIndexOf(turns, o.audioEndMs);
    if (t < 0) continue;
    const prev = lastByTurn.get(t);
    if (prev && prev.text === o.text.trim()) continue;
    if (prev) partialIntervalsMs.push(o.atMs - prev.atMs);
    lastByTurn.set(t, { atMs: o.atMs, text: o.text.trim() });
    partialsByTurn[t]!.push(Math.round(o.atMs - wallAt(trace.frameSentAtMs, turns[t]!.startMs)));
  }
  const turnTraces = turns.map((turn, i) => ({
    start_ms: Math.round(turn.startMs),
    end_ms: Math.round(turn.endMs),
    first_text_ms: firstText[i]!,
    partial_ms: partialsByTurn[i]!,
    final_ms: finalAt[i]!,
    finalised: finalised[i]!,
    final_path: finalPaths[i]!,
  }));
  return {
    ttfpMs,
    ttfsMs,
    partialIntervalsMs,
    turnsWithoutResult,
    turnsUnfinalised,
    turns: turns.length,
    turnTraces,
  };
}

/** `FinalPath` of a turn's last final `o`; null when the event lacks the runner's times. */
function finalPath(frameSentAtMs: readonly number[], turn: Turn, o: Observation): FinalPath | null {
  if (o.runnerAtMs === undefined || o.latencyMs === undefined) return null;
  const end = wallAt(frameSentAtMs, turn.endMs);
  const audioSent = wallAt(frameSentAtMs, Math.max(turn.endMs, o.audioEndMs - 1));
  const atRunner = o.runnerAtMs - o.latencyMs;
  return {
    audio_past_end_ms: Math.round(audioSent - end),
    to_runner_ms: Math.round(atRunner - audioSent),
    in_runner_ms: Math.round(o.latencyMs),
  };
}

/** The turn whose span [start, next start) holds `ms`, or -1 before the first. */
function turnIndexOf(turns: readonly Turn[], ms: number): number {
  let idx = -1;
  for (let i = 0; i < turns.length; i++) if (ms > turns[i]!.startMs) idx = i;
  return idx;
}

/** The keys the benchmark reports for one set (the JSON shape). */
export interface SetFigures {
  files: number;
  audio_s: number;
  ttfp_ms_p50: number | null;
  ttfp_ms_p95: number | null;
  partial_interval_ms_p50: number | null;
  partial_interval_ms_p95: number | null;
  ttfs_ms_p50: number | null;
  ttfs_ms_p95: number | null;
  wer: number | null;
  wer_offline: number | null;
  /** CPU seconds while the calls' audio played (each call's first frame to its last, the trailing
   * silence included) over the seconds of audio played. */
  cpu_s_per_audio_s: number | null;
  /** CPU seconds over wall seconds of the whole set's run (calls, waits for their last finals). */
  cores_used: number | null;
}

/** Merges the calls of one set into its figures; WER and CPU are computed by the caller. */
export function setLatencies(calls: readonly CallMeasures[]): {
  ttfp_ms_p50: number | null;
  ttfp_ms_p95: number | null;
  partial_interval_ms_p50: number | null;
  partial_interval_ms_p95: number | null;
  ttfs_ms_p50: number | null;
  ttfs_ms_p95: number | null;
} {
  const ttfp = calls.flatMap((c) => c.ttfpMs);
  const ttfs = calls.flatMap((c) => c.ttfsMs);
  const intervals = calls.flatMap((c) => c.partialIntervalsMs);
  return {
    ttfp_ms_p50: round(percentile(ttfp, 0.5)),
    ttfp_ms_p95: round(percentile(ttfp, 0.95)),
    partial_interval_ms_p50: round(percentile(intervals, 0.5)),
    partial_interval_ms_p95: round(percentile(intervals, 0.95)),
    ttfs_ms_p50: round(percentile(ttfs, 0.5)),
    ttfs_ms_p95: round(percentile(ttfs, 0.95)),
  };
}

export function round(x: number | null, digits = 0): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
