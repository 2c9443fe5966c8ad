/**
 * ozen bench stt: each recording of each set as a simulated Twilio call at real-time pace (8 kHz
 * mu-law) through the whole path -- the edge on workerd, the runner with the whisper engine, the
 * worker -- against WhisperLive fed the same audio in the same run, and an offline beam-5 pass of
 * the same 8 kHz audio with the same model.
 *
 * Per set: TTFP, partial interval (p50 and p95), TTFS (see stt-measure.ts for the definitions), WER
 * of the finals and of the offline pass (shared/src/metrics/wer.ts normalisation), CPU seconds per
 * audio second while the audio played (runner + worker + workerd from /proc, sampled at each
 * call's first and last frame; for the anchor, its server) and the cores used over the whole run.
 * Then `max_realtime_calls`: N concurrent calls (each ~30 s of the first set's short files joined
 * with pauses) for N = 1, 2, 3, 4, 6, 8, ... until TTFP p95 or TTFS p95 passes `--ramp-p95-ms`
 * (default `LATENCY_LIMIT_MS`) or a turn goes without a final; the largest N that held.
 *
 * A set's language is the set's own (stt-sets.ts), so Hebrew and English sets share a run; a WAV
 * without a reference is reported (stderr and the details file), not measured.
 *
 * Every call ends with `--tail-s` seconds of silence (as a caller would pause before the agent
 * speaks), the same for both engines, so finals come from end-of-speech detection, not hang-up.
 * WhisperLive's line then stays open (silence) while its last segment is not completed, up to
 * `--anchor-wait-s` more: it stops decoding at END_OF_AUDIO, so hanging up at once would cut it.
 * The JSON has exactly the keys of the issue; everything else (per file, per level, settings,
 * load) goes to FILE with `.details.json`.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { decodeMulaw, percentile, pooledWer, transcriptErrors } from "@ozen/shared";
import type { WerLanguage, WordErrors } from "@ozen/shared";
import { startLocalEdge } from "@ozen/edge/local";
import { fail, parseCommand, positive } from "../args.js";
import { BENCH_STT } from "../commands.js";
import { loadAudio8k } from "../audio.js";
import { FRAME_BYTES, FRAME_MS, newIdentity, placeCall } from "../simulator.js";
import { benchPython, findModel, listModels, repoRoot, workerPython } from "../whisper-env.js";
import type { ModelInfo } from "../whisper-env.js";
import { allDescendants, cpuSecondsOf, findDescendants, spawnTs } from "./procs.js";
import type { NodeChild } from "./procs.js";
import { measureCall, round, setLatencies, turnsFromSpeech } from "./stt-measure.js";
import type { CallMeasures, CallTrace, Observation, SetFigures, Turn, TurnTrace } from "./stt-measure.js";
import { loadSet } from "./stt-sets.js";
import { newRelaySecret } from "../relay-secret.js";
import type { EvalSet } from "./stt-sets.js";
import { startWhisperLive, streamToWhisperLive } from "./whisperlive.js";
import type { WhisperLiveServer } from "./whisperlive.js";

const AUTH = "bench-auth-token";
const API = "bench-api-token";
/** By default a concurrency level holds while TTFP p95 and TTFS p95 stay at or under this, every turn finalised. */
export const LATENCY_LIMIT_MS = 2000;

const LEVELS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
/** The call of the concurrency ramp: short files (many turns) of the first set joined to at least this long. */
const RAMP_CALL_S = 30;
const RAMP_FILE_MAX_S = 8;
const RAMP_GAP_S = 1.5;

const benchStart = Date.now();
function log(msg: string): void {
  process.stderr.write(`bench stt [${((Date.now() - benchStart) / 1000).toFixed(0)} s]: ${msg}\n`);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** One recording, ready to be called in: mu-law with the trailing silence, and its reference. */
interface PreparedFile {
  readonly id: string;
  readonly reference: string;
  readonly audioS: number;
  readonly mulaw: Uint8Array;
  /** From the offline pass. */
  turns: Turn[];
  offlineText: string;
}

const MULAW_SILENCE = 0xff;

function withSilence(mulaw: Uint8Array, seconds: number): Uint8Array {
  const out = new Uint8Array(mulaw.length + Math.round(seconds * 8000)).fill(MULAW_SILENCE);
  out.set(mulaw);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Offline pass and reference speech (the worker's venv)

interface OfflineLine {
  id: string;
  text: string;
  speech_ms: [number, number][];
  decode_s: number;
}

async function offlinePass(
  python: string,
  model: ModelInfo,
  language: WerLanguage,
  files: { id: string; mulaw: Uint8Array }[],
): Promise<Map<string, OfflineLine>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-bench-stt-"));
  try {
    const manifest = {
      model: model.path,
      language,
      files: files.map((f, i) => {
        const pcmPath = path.join(dir, `${i}.pcm`);
        const pcm = decodeMulaw(f.mulaw); // what the edge relays: the mu-law, decoded
        writeFileSync(pcmPath, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
        return { id: f.id, pcm: pcmPath };
      }),
    };
    const manifestPath = path.join(dir, "manifest.json");
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const child = spawn(python, [path.join(repoRoot, "tools/bench-py/offline_pass.py"), manifestPath], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HF_HUB_OFFLINE: "1" },
    });
    const out = new Map<string, OfflineLine>();
    const errTail: string[] = [];
    createInterface({ input: child.stderr! }).on(
      "line",
      (l) => (errTail.push(l), errTail.length > 20 && errTail.shift()),
    );
    createInterface({ input: child.stdout! }).on("line", (l) => {
      const v = JSON.parse(l) as OfflineLine;
      out.set(v.id, v);
    });
    const code = await new Promise<number>((r) => child.once("exit", (c) => r(c ?? -1)));
    if (code !== 0) throw new Error(`offline pass exited ${code}:\n${errTail.join("\n")}`);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The ozen path

interface EdgeEvent {
  type?: string;
  utteranceId?: string;
  seq?: number;
  text?: string;
  audioStartMs?: number;
  audioEndMs?: number;
  wallMs?: number;
  edgeWallMs?: number;
  latencyMs?: number;
}

async function fetchEvents(edgeUrl: string, callSid: string): Promise<EdgeEvent[]> {
  const res = await fetch(`${edgeUrl}/calls/${callSid}/events`, { headers: { Authorization: `Bearer ${API}` } });
  if (!res.ok) return [];
  const body = (await res.json()) as { events?: EdgeEvent[] };
  return body.events ?? [];
}

function observationsOf(events: Iterable<EdgeEvent>): Observation[] {
  const out: Observation[] = [];
  for (const e of events) {
    if ((e.type !== "partial" && e.type !== "final") || typeof e.audioEndMs !== "number") continue;
    out.push({
      kind: e.type,
      atMs: e.edgeWallMs ?? e.wallMs ?? 0,
      audioStartMs: e.audioStartMs,
      audioEndMs: e.audioEndMs,
      text: e.text ?? "",
      ...(e.wallMs !== undefined ? { runnerAtMs: e.wallMs } : {}),
      ...(e.latencyMs !== undefined ? { latencyMs: e.latencyMs } : {}),
    });
  }
  return out;
}

function finalText(events: Iterable<EdgeEvent>): string {
  return [...events]
    .filter((e) => e.type === "final")
    .sort((a, b) => (a.audioStartMs ?? 0) - (b.audioStartMs ?? 0))
    .map((e) => (e.text ?? "").trim())
    .filter((t) => t)
    .join(" ");
}

interface OzenCall extends CallTrace {
  readonly text: string;
  readonly callSid: string;
  /** CPU seconds (`cpu`) from the first frame sent to the last; null without `cpu`. */
  readonly cpuS: number | null;
  /** Audio played, s (the trailing silence included). */
  readonly playedS: number;
}

/** Collects a call's events from the edge while it runs (the edge keeps the last 500 only). */
class EventCollector {
  private readonly seen = new Map<string, EdgeEvent>();
  constructor(
    private readonly edgeUrl: string,
    readonly callSid: string,
  ) {}
  async poll(): Promise<void> {
    for (const e of await fetchEvents(this.edgeUrl, this.callSid)) {
      this.seen.set(`${e.type}|${e.utteranceId}|${e.seq}|${e.wallMs}|${e.audioEndMs}`, e);
    }
  }
  events(): EdgeEvent[] {
    return [...this.seen.values()];
  }
}

/**
 * One call of `mulaw` at real-time pace; `cpu` (CPU seconds of the measured processes) is sampled
 * when its first frame and its last frame are sent, so the call's CPU is counted over the same
 * window as the audio it played.
 */
async function ozenCall(edgeUrl: string, mulaw: Uint8Array, cpu?: () => number): Promise<OzenCall> {
  const frameSentAtMs: number[] = [];
  const totalFrames = Math.floor(mulaw.length / FRAME_BYTES);
  let cpuStart: number | undefined;
  let cpuEnd: number | undefined;
  const id = newIdentity();
  const collector = new EventCollector(edgeUrl, id.callSid);
  const timer = setInterval(() => void collector.poll().catch(() => {}), 3000);
  try {
    await placeCall({
      edgeUrl,
      authToken: AUTH,
      audio: mulaw,
      identity: id,
      onFrameSent: () => {
        frameSentAtMs.push(Date.now());
        if (cpu && frameSentAtMs.length === 1) cpuStart = cpu();
        if (cpu && frameSentAtMs.length === totalFrames) cpuEnd = cpu();
      },
    });
  } finally {
    clearInterval(timer);
  }
  const closedAtMs = Date.now();
  // the runner finishes the call's last utterance after the hang-up
  await waitForEnd(collector);
  const events = collector.events();
  return {
    frameSentAtMs,
    observations: observationsOf(events),
    closedAtMs,
    text: finalText(events),
    callSid: id.callSid,
    cpuS: cpuStart !== undefined && cpuEnd !== undefined ? cpuEnd - cpuStart : null,
    playedS: (frameSentAtMs.length * FRAME_MS) / 1000,
  };
}

/**
 * Waits for the call's `call.ended`, which the runner sends once the worker's last final is out
 * (or its WHISPER_END_TIMEOUT_MS, 30 s by default, passed). A shorter wait would count a final
 * that a loaded machine delivers a few seconds after the hang-up as lost.
 */
async function waitForEnd(c: EventCollector, maxMs = 45_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    await c.poll();
    if (c.events().some((e) => e.type === "call.ended") || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Runner {
  readonly proc: NodeChild;
  stop(): Promise<void>;
}

/** The relay's secret of this run's local stack, on both sides. */
const RELAY_SECRET = newRelaySecret();

/**
 * The runner for one set's calls. `maxCalls`: OZEN_MAX_CALLS, so the runner's admission (whose
 * default comes from the model's name, and this bench names the model by its directory) never
 * refuses a call the ramp places: the ramp measures the engine's capacity, not the admission.
 */
async function startRunner(
  engine: string,
  port: number,
  model: ModelInfo,
  language: WerLanguage,
  maxCalls: number,
): Promise<Runner> {
  const proc = spawnTs(path.join(repoRoot, "stt-runner/src/main.ts"), ["--port", String(port), "--engine", engine], {
    RELAY_SECRET,
    OZEN_MAX_CALLS: String(Math.max(1, maxCalls)),
    WHISPER_MODEL: model.path,
    WHISPER_LANGUAGE: language,
    HF_HUB_OFFLINE: "1",
  });
  await Promise.race([
    proc.waitFor(/stt-runner listening/),
    new Promise((_, rej) => setTimeout(() => rej(new Error("the runner did not listen within 180 s")), 180_000)),
  ]);
  return {
    proc,
    stop: async () => {
      proc.child.kill("SIGTERM");
      const killer = setTimeout(() => proc.child.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(killer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Per-set runs

interface FileResult {
  id: string;
  audio_s: number;
  turns: number;
  ttfp_ms: number[];
  ttfs_ms: number[];
  unfinalised_turns: number;
  turns_without_result: number;
  /** Per turn: first text, partials and last final (stt-measure.ts `TurnTrace`). */
  turn_traces: TurnTrace[];
  /** null when the file's reference is empty. */
  wer: number | null;
  text: string;
  reference: string;
}

interface SetRun {
  figures: SetFigures;
  files: FileResult[];
  cpu_s: number;
  wall_s: number;
}

/** CPU over a set's run: the total over its wall time, and each call's while its audio played. */
interface RunCpu {
  readonly cpuS: number;
  readonly wallS: number;
}

type MeasuredCall = CallTrace & { text: string; cpuS: number | null; playedS: number };

function summarise(
  set: EvalSet,
  files: PreparedFile[],
  traces: MeasuredCall[],
  run: RunCpu | null,
  offlineErrors: WordErrors[],
): SetRun & { measures: CallMeasures[] } {
  const measures = traces.map((t, i) => measureCall(files[i]!.turns, t));
  const errors = traces.map((t, i) => transcriptErrors(files[i]!.reference, t.text, set.language));
  const audioS = files.reduce((s, f) => s + f.audioS, 0);
  const playedCpuS = traces.every((t) => t.cpuS !== null) ? traces.reduce((s, t) => s + t.cpuS!, 0) : null;
  const playedS = traces.reduce((s, t) => s + t.playedS, 0);
  const figures: SetFigures = {
    files: files.length,
    audio_s: round(audioS, 1)!,
    ...setLatencies(measures),
    wer: round(pooledWer(referenced(errors)), 4),
    wer_offline: round(pooledWer(referenced(offlineErrors)), 4),
    cpu_s_per_audio_s: playedCpuS === null || playedS === 0 ? null : round(playedCpuS / playedS, 3),
    cores_used: run === null || run.wallS <= 0 ? null : round(run.cpuS / run.wallS, 3),
  };
  const fileResults = files.map((f, i) => {
    const e = errors[i]!;
    return {
      id: f.id,
      audio_s: round(f.audioS, 2)!,
      turns: measures[i]!.turns,
      ttfp_ms: measures[i]!.ttfpMs.map((x) => Math.round(x)),
      ttfs_ms: measures[i]!.ttfsMs.map((x) => Math.round(x)),
      unfinalised_turns: measures[i]!.turnsUnfinalised,
      turns_without_result: measures[i]!.turnsWithoutResult,
      turn_traces: measures[i]!.turnTraces,
      wer: e.referenceWords ? round((e.substitutions + e.deletions + e.insertions) / e.referenceWords, 4) : null,
      text: traces[i]!.text,
      reference: f.reference,
    };
  });
  return {
    figures,
    files: fileResults,
    cpu_s: round(run?.cpuS ?? 0, 2)!,
    wall_s: round(run?.wallS ?? 0, 1)!,
    measures,
  };
}

/**
 * The files that have reference words: a recording whose reference is empty (he/dialog's
 * three-speaker file ships an empty one) still counts for latency, not for WER.
 */
function referenced(errors: readonly WordErrors[]): WordErrors[] {
  return errors.filter((e) => e.referenceWords > 0);
}

// ---------------------------------------------------------------------------------------------

export async function benchStt(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_STT, argv);
  if (!values.set?.length) fail("--set DIR is required (e.g. --set ../shared/data/en/asterisk-8k)");
  if (values.language && values.language !== "he" && values.language !== "en") fail("--language is he or en");
  if (values.anchor !== "whisperlive" && values.anchor !== "none") fail("--anchor is whisperlive or none");
  const maxFiles = values.files ? positive("files", values.files, 1) : Infinity;
  const tailS = positive("tail-s", values["tail-s"], 3, true);
  const maxCalls = positive("max-calls", values["max-calls"], 8, true);
  const anchorWaitS = positive("anchor-wait-s", values["anchor-wait-s"], 10, true);
  const rampP95Ms = positive("ramp-p95-ms", values["ramp-p95-ms"], LATENCY_LIMIT_MS);
  const engine = values.engine;

  const python = workerPython();
  if (!python) fail("the whisper worker's venv is missing (stt-runner/whisper/.venv): run `make install`");
  const listed = listModels();
  if (!listed.ok) fail(listed.message);
  const found = findModel(listed.models, values.model);
  if ("error" in found) fail(found.error);
  const model = found;
  const anchorPython = values.anchor === "whisperlive" ? benchPython() : undefined;
  if (values.anchor === "whisperlive" && !anchorPython) {
    fail("WhisperLive's venv is missing (stt-runner/whisper/.venv-bench): run `make bench-install`, or --anchor none");
  }

  const sets = values.set.map((d) => {
    try {
      const s = loadSet(d, values.language as WerLanguage | undefined);
      if (!model.multilingual && s.language !== "en")
        log(`warning: ${model.name} is English-only; ${s.name} is ${s.language}`);
      if (s.unreferenced.length)
        log(
          `${s.name}: ${s.unreferenced.length} WAV(s) without a reference, not measured: ${s.unreferenced.join(", ")}`,
        );
      return { ...s, items: s.items.slice(0, maxFiles) };
    } catch (e) {
      return fail((e as Error).message);
    }
  });
  const started = new Date();
  const loadAtStart = os.loadavg();

  // 1. audio and the offline pass (also the reference speech every latency is measured from)
  const prepared = new Map<string, PreparedFile[]>();
  const offlineErrors = new Map<string, WordErrors[]>();
  for (const set of sets) {
    const files = set.items.map((it) => {
      const a = loadAudio8k(it.audioPath);
      return {
        id: it.id,
        reference: it.reference,
        audioS: a.durationMs / 1000,
        mulaw: a.mulaw,
        turns: [],
        offlineText: "",
      };
    });
    log(`${set.name}: offline pass (beam 5) and reference speech over ${files.length} files ...`);
    const off = await offlinePass(python, model, set.language, files);
    for (const f of files) {
      const o = off.get(f.id);
      if (!o) throw new Error(`the offline pass returned nothing for ${f.id}`);
      (f as PreparedFile).turns = turnsFromSpeech(o.speech_ms);
      (f as PreparedFile).offlineText = o.text;
    }
    prepared.set(set.name, files);
    offlineErrors.set(
      set.name,
      files.map((f) => transcriptErrors(f.reference, f.offlineText, set.language)),
    );
  }

  // 2. the whole path
  const runnerPort = await freePort();
  const edgePort = await freePort();
  const edgeUrl = `http://127.0.0.1:${edgePort}`;
  const edge = await startLocalEdge({
    port: edgePort,
    verbose: false,
    vars: {
      PUBLIC_BASE_URL: edgeUrl,
      RUNNER_URL: `ws://127.0.0.1:${runnerPort}/relay`,
      RELAY_SECRET,
      TWILIO_AUTH_TOKEN: AUTH,
      API_TOKEN: API,
      INGEST_ACK: "off",
    },
  });
  const workerdPids = findDescendants(process.pid, "workerd");
  /** The processes whose CPU the ozen path costs: the runner, its worker, workerd. */
  const pidsOf = (runner: Runner) => () => [
    runner.proc.child.pid!,
    ...allDescendants(runner.proc.child.pid!),
    ...workerdPids,
  ];
  let wl: WhisperLiveServer | undefined;
  const result: Record<string, unknown> = { engine, model: model.name, sets: {}, max_realtime_calls: null };
  const details: Record<string, unknown> = {
    command: `ozen bench stt ${argv.join(" ")}`,
    started: started.toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, loadavg_start: loadAtStart },
    source: sourceState(),
    model,
    tail_silence_s: tailS,
    anchor_wait_s: anchorWaitS,
    definitions: {
      turn_gap_ms: 1000,
      ramp_p95_limit_ms: rampP95Ms,
      cpu_s_per_audio_s:
        "CPU of the runner, the worker and workerd from each call's first frame sent to its last (the trailing silence included), over the audio those frames carried",
      cores_used:
        "CPU of the same processes over the wall time of the set's whole run (calls and the waits for their last finals)",
      reference_speech:
        "Silero VAD (faster-whisper's ONNX) on the 8 kHz audio upsampled with soxr, threshold 0.5, 100 ms min silence, no padding",
      offline: "faster-whisper, same model directory, int8, beam 5, temperature 0, language forced, whole file",
    },
    sets: {},
    anchor: {},
  };
  const anchorSets: Record<string, SetFigures> = {};
  try {
    for (const set of sets) {
      const files = prepared.get(set.name)!;
      log(`${set.name}: ${files.length} calls through edge -> runner (${engine}, ${model.name}, ${set.language}) ...`);
      const runner = await startRunner(engine, runnerPort, model, set.language, maxCalls);
      const traces: OzenCall[] = [];
      let cpu: RunCpu;
      const t0 = Date.now();
      try {
        const pids = pidsOf(runner);
        const cpuNow = () => cpuSecondsOf(pids());
        const cpu0 = cpuNow();
        for (const f of files) traces.push(await ozenCall(edgeUrl, withSilence(f.mulaw, tailS), cpuNow));
        cpu = { cpuS: cpuNow() - cpu0, wallS: (Date.now() - t0) / 1000 };
      } finally {
        await runner.stop();
      }
      const run = summarise(set, files, traces, cpu, offlineErrors.get(set.name)!);
      (result["sets"] as Record<string, SetFigures>)[set.name] = run.figures;
      (details["sets"] as Record<string, unknown>)[set.name] = {
        ...run.figures,
        language: set.language,
        language_from: set.languageFrom,
        unreferenced: set.unreferenced,
        wall_s: (Date.now() - t0) / 1000,
        cpu_s: run.cpu_s,
        unfinalised_turns: run.files.reduce((n, f) => n + f.unfinalised_turns, 0),
        turns: run.files.reduce((n, f) => n + f.turns, 0),
        files: run.files.map((f, i) => ({ ...f, offline_text: files[i]!.offlineText })),
      };
      log(`${set.name}: ${JSON.stringify(run.figures)}`);

      if (anchorPython) {
        if (!wl) {
          wl = await startWhisperLive({ python: anchorPython, repoRoot, port: await freePort(), modelDir: model.path });
        }
        log(`${set.name}: ${files.length} sessions through WhisperLive (${model.name}) ...`);
        const wlPids = () => [wl!.pid, ...allDescendants(wl!.pid)];
        const wlCpu = () => cpuSecondsOf(wlPids());
        const cpu0 = wlCpu();
        const t1 = Date.now();
        const sessions = [];
        for (const [i, f] of files.entries()) {
          sessions.push(
            await streamToWhisperLive({
              port: wl.port,
              mulaw: withSilence(f.mulaw, tailS),
              language: set.language,
              modelDir: model.path,
              uid: `bench-${set.name}-${i}`,
              maxExtraS: anchorWaitS,
              cpu: wlCpu,
            }),
          );
        }
        const anchorCpu = { cpuS: wlCpu() - cpu0, wallS: (Date.now() - t1) / 1000 };
        const anchorRun = summarise(set, files, sessions, anchorCpu, offlineErrors.get(set.name)!);
        anchorSets[set.name] = anchorRun.figures;
        (details["anchor"] as Record<string, unknown>)[set.name] = {
          ...anchorRun.figures,
          wall_s: (Date.now() - t1) / 1000,
          cpu_s: anchorRun.cpu_s,
          unfinalised_turns: anchorRun.files.reduce((n, f) => n + f.unfinalised_turns, 0),
          turns: anchorRun.files.reduce((n, f) => n + f.turns, 0),
          files: anchorRun.files,
        };
        log(`${set.name} (WhisperLive): ${JSON.stringify(anchorRun.figures)}`);
      }
    }
    if (wl) {
      await wl.close();
      wl = undefined;
    }

    // 3. how many calls at once
    if (maxCalls > 0) {
      const set = sets[0]!;
      const ramp = rampCall(prepared.get(set.name)!, tailS);
      log(`max realtime calls: ${ramp.audioS.toFixed(1)} s calls of ${set.name}, levels up to ${maxCalls} ...`);
      const runner = await startRunner(engine, runnerPort, model, set.language, maxCalls);
      const levels: unknown[] = [];
      let best = 0;
      try {
        for (const n of LEVELS.filter((l) => l <= maxCalls)) {
          const level = await rampLevel(edgeUrl, ramp, n, rampP95Ms, pidsOf(runner));
          levels.push(level);
          log(`  ${n} calls: ${JSON.stringify(level)}`);
          if (!level.holds) break;
          best = n;
        }
      } finally {
        await runner.stop();
      }
      result["max_realtime_calls"] = best;
      details["max_realtime_calls"] = { set: set.name, call_audio_s: ramp.audioS, levels };
    }
  } finally {
    if (wl) await wl.close();
    await edge.close();
  }
  result["anchor"] = { whisperlive: { sets: anchorSets } };
  (details["machine"] as Record<string, unknown>)["loadavg_end"] = os.loadavg();
  const text = JSON.stringify(result, null, 2);
  if (values.json) {
    writeFileSync(values.json, text + "\n");
    writeFileSync(values.json.replace(/\.json$/, "") + ".details.json", JSON.stringify(details, null, 2) + "\n");
  }
  console.log(text);
}

/** The commit measured, and the files that differed from it (a shared work tree may be mid-change). */
function sourceState(): { commit: string; modified: string[] } {
  const git = (args: string[]) => spawnSync("git", args, { cwd: repoRoot, encoding: "utf8" }).stdout ?? "";
  return {
    commit: git(["rev-parse", "HEAD"]).trim(),
    modified: git(["status", "--short", "--untracked-files=no"])
      .split("\n")
      .map((l) => l.slice(3).trim())
      .filter((l) => l),
  };
}

// ---------------------------------------------------------------------------------------------
// The concurrency ramp

interface RampCall {
  readonly mulaw: Uint8Array;
  readonly turns: Turn[];
  readonly audioS: number;
}

/** Files of a set joined (with pauses) into one call of at least RAMP_CALL_S, and its turns. */
function rampCall(files: readonly PreparedFile[], tailS: number): RampCall {
  const parts: Uint8Array[] = [];
  const turns: Turn[] = [];
  let offsetMs = 0;
  for (const f of files) {
    if (f.audioS > RAMP_FILE_MAX_S || f.turns.length === 0) continue;
    parts.push(f.mulaw, new Uint8Array(RAMP_GAP_S * 8000).fill(MULAW_SILENCE));
    for (const t of f.turns) turns.push({ startMs: t.startMs + offsetMs, endMs: t.endMs + offsetMs });
    offsetMs += f.mulaw.length / 8 + RAMP_GAP_S * 1000;
    if (offsetMs >= RAMP_CALL_S * 1000) break;
  }
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  return { mulaw: withSilence(joined, tailS), turns, audioS: offsetMs / 1000 };
}

async function rampLevel(edgeUrl: string, call: RampCall, n: number, limitMs: number, pids: () => number[]) {
  const cpu0 = cpuSecondsOf(pids());
  const t0 = Date.now();
  const calls = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      await new Promise((r) => setTimeout(r, (i * 1000) / n)); // calls do not start in the same instant
      return ozenCall(edgeUrl, call.mulaw);
    }),
  );
  const coresUsed = (cpuSecondsOf(pids()) - cpu0) / ((Date.now() - t0) / 1000);
  const measures = calls.map((c) => measureCall(call.turns, c));
  const ttfp = measures.flatMap((m) => m.ttfpMs);
  const ttfs = measures.flatMap((m) => m.ttfsMs);
  const unfinalised = measures.reduce((s, m) => s + m.turnsUnfinalised, 0);
  const ttfpP95 = percentile(ttfp, 0.95);
  const ttfsP95 = percentile(ttfs, 0.95);
  const holds = unfinalised === 0 && ttfpP95 !== null && ttfsP95 !== null && ttfpP95 <= limitMs && ttfsP95 <= limitMs;
  return {
    calls: n,
    holds,
    ttfp_ms_p50: round(percentile(ttfp, 0.5)),
    ttfp_ms_p95: round(ttfpP95),
    ttfs_ms_p50: round(percentile(ttfs, 0.5)),
    ttfs_ms_p95: round(ttfsP95),
    partial_interval_ms_p50: round(
      percentile(
        measures.flatMap((m) => m.partialIntervalsMs),
        0.5,
      ),
    ),
    unfinalised_turns: unfinalised,
    turns: measures.reduce((s, m) => s + m.turns, 0),
    cores_used: round(coresUsed, 2),
    load_avg_1m: round(os.loadavg()[0]!, 2),
  };
}
