/**
 * `ozen bench vad`: the runner's speech activity detector (shared/src/audio/vad.ts) against
 * Silero (the whisper worker's 8 kHz ONNX, run by its venv's Python) on real telephone audio:
 * how late it says `speech.started` after Silero's onset, which onsets it misses, and how often
 * it fires where Silero hears no speech. Prints JSON (and writes it with --json FILE).
 *
 *   ozen bench vad [--set DIR|FILE ...] [--margin-db N] [--min-dbfs N] [--onset-ms N] [--json FILE]
 *
 * Default sets: ../shared/data/vad/aepyx_8k.wav and ../shared/data/en/asterisk-8k.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { SpeechActivityDetector, percentile } from "@ozen/shared";
import type { SpeechActivity, VadOptions } from "@ozen/shared";
import { fail, parseCommand } from "../args.js";
import { BENCH_VAD } from "../commands.js";
import { loadAudio8k } from "../audio.js";
import { evaluationPath } from "../speech-data.js";

const WHISPER_PYTHON = path.resolve("stt-runner", "whisper", ".venv", "bin", "python");

/** Silero's speech probability per 32 ms window of each file (8 kHz), from the worker's venv. */
const SILERO_SCRIPT = `
import json, sys
import numpy as np
from ozen_whisper.vad import SileroModel, WINDOW_SAMPLES, CONTEXT_SAMPLES
model = SileroModel()
out = []
for f in json.loads(sys.stdin.read()):
    pcm = np.fromfile(f, dtype=np.int16).astype(np.float32) / 32768.0
    state = np.zeros((2, 1, 128), dtype=np.float32)
    ctx = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
    probs = []
    for at in range(0, len(pcm) - WINDOW_SAMPLES + 1, WINDOW_SAMPLES):
        w = pcm[at:at + WINDOW_SAMPLES]
        x = np.concatenate([ctx, w])[None, :]
        p, state = model.window(x, state)
        ctx = w[-CONTEXT_SAMPLES:]
        probs.append(round(float(p), 3))
    out.append(probs)
print(json.dumps(out))
`;

interface Segment {
  readonly startMs: number;
  readonly endMs: number;
}

/** Silero's segments the way the frameworks threshold it: on at 0.5, off below 0.35 for 300 ms, at least 90 ms long. */
function sileroSegments(probs: readonly number[]): Segment[] {
  const winMs = 32;
  const out: Segment[] = [];
  let start = -1;
  let lastOn = -1;
  probs.forEach((p, i) => {
    const t = i * winMs;
    if (start < 0 && p >= 0.5) {
      start = t;
      lastOn = t + winMs;
    } else if (start >= 0) {
      if (p >= 0.35) lastOn = t + winMs;
      else if (t + winMs - lastOn >= 300) {
        if (lastOn - start >= 90) out.push({ startMs: start, endMs: lastOn });
        start = -1;
      }
    }
  });
  if (start >= 0 && lastOn - start >= 90) out.push({ startMs: start, endMs: lastOn });
  return out;
}

function filesOf(set: string): string[] {
  if (!existsSync(set)) return [];
  if (statSync(set).isFile()) return [set];
  return readdirSync(set)
    .filter((f) => f.endsWith(".wav"))
    .sort()
    .map((f) => path.join(set, f));
}

export async function benchVad(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_VAD, argv);
  // the evaluation sets through the one place that locates speech (speech-data.ts)
  const sets =
    values.set ??
    [evaluationPath("vad", "aepyx_8k.wav"), evaluationPath("en/asterisk-8k")].map((e) => {
      if ("skip" in e) fail(e.skip);
      return e.path;
    });
  if (!existsSync(WHISPER_PYTHON)) fail(`${WHISPER_PYTHON} is missing: run make install (Silero is the reference)`);
  const opts: Partial<VadOptions> = {
    ...(values["margin-db"] ? { marginDb: Number(values["margin-db"]) } : {}),
    ...(values["min-dbfs"] ? { minDbfs: Number(values["min-dbfs"]) } : {}),
    ...(values["onset-ms"] ? { onsetMs: Number(values["onset-ms"]) } : {}),
    ...(values["hangover-ms"] ? { hangoverMs: Number(values["hangover-ms"]) } : {}),
  };
  const report: Record<string, unknown> = {
    reference: "silero_vad.onnx 8 kHz (on 0.5, off 0.35 for 300 ms)",
    options: opts,
    sets: {},
  };
  for (const set of sets) {
    const files = filesOf(set);
    if (files.length === 0) {
      console.error(`skipping ${set}: no WAV files there`);
      continue;
    }
    const audio = files.map((f) => loadAudio8k(f).pcm);
    const tmp = audio.map((pcm, i) => {
      const f = path.join(process.env["TMPDIR"] ?? "/tmp", `ozen-vad-${process.pid}-${i}.pcm`);
      writeFileSync(f, pcm);
      return f;
    });
    const probs = JSON.parse(
      execFileSync(WHISPER_PYTHON, ["-c", SILERO_SCRIPT], {
        input: JSON.stringify(tmp),
        cwd: path.join("stt-runner", "whisper"),
        maxBuffer: 64 << 20,
      }).toString(),
    ) as number[][];
    const onsetLatencies: number[] = [];
    let refSegments = 0;
    let missed = 0;
    let merged = 0;
    let falseStarts = 0;
    let starts = 0;
    let audioMs = 0;
    let cpuMs = 0;
    audio.forEach((pcm, i) => {
      const ref = sileroSegments(probs[i]!);
      refSegments += ref.length;
      audioMs += pcm.length / 8;
      const vad = new SpeechActivityDetector(opts);
      const events: SpeechActivity[] = [];
      const t0 = performance.now();
      // 100 ms blocks, as the runner gets them
      for (let at = 0; at < pcm.length; at += 800) vad.feed(pcm.subarray(at, at + 800), at, (a) => events.push(a));
      vad.finish((a) => events.push(a));
      cpuMs += performance.now() - t0;
      const started = events.filter((e) => e.kind === "started");
      const spans = events.flatMap((e) => (e.kind === "ended" ? [{ startMs: e.startAudioMs, endMs: e.audioMs }] : []));
      starts += started.length;
      for (const s of started) {
        if (!ref.some((r) => s.audioMs >= r.startMs - 150 && s.audioMs <= r.endMs + 150)) falseStarts++;
      }
      for (const r of ref) {
        // Silero's onset inside speech the detector already had on (it did not pause between): no onset to time
        if (spans.some((v) => v.startMs < r.startMs - 150 && v.endMs >= r.startMs)) {
          merged++;
          continue;
        }
        const hit = started.find((s) => s.audioMs >= r.startMs - 300 && s.audioMs <= r.endMs);
        if (hit) onsetLatencies.push(hit.detectedAtMs - r.startMs);
        else missed++;
      }
    });
    (report["sets"] as Record<string, unknown>)[path.basename(set)] = {
      files: files.length,
      audioSeconds: Math.round(audioMs / 100) / 10,
      sileroSegments: refSegments,
      vadStarts: starts,
      onsetLatencyMs: {
        p50: percentile(onsetLatencies, 0.5),
        p95: percentile(onsetLatencies, 0.95),
        matched: onsetLatencies.length,
      },
      missedOnsets: missed,
      onsetsInsideOngoingSpeech: merged,
      falseStarts,
      falseStartsPerMinute: Math.round((falseStarts / (audioMs / 60000)) * 100) / 100,
      cpuMsPerAudioSecond: Math.round((cpuMs / (audioMs / 1000)) * 1000) / 1000,
    };
  }
  const text = JSON.stringify(report, null, 2);
  console.log(text);
  if (values.json) writeFileSync(values.json, text + "\n");
}
