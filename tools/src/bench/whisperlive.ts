/**
 * The anchor of `ozen bench stt`: WhisperLive (collabora/WhisperLive, `whisper-live` from PyPI),
 * its server started here on the same model directory, driven from Node with its WebSocket
 * protocol as its own client speaks it:
 *   client -> server: one JSON text message of options, then binary frames of 16 kHz mono float32
 *                     samples, then the bytes `END_OF_AUDIO`;
 *   server -> client: `{"uid","message":"SERVER_READY","backend"}`, then `{"uid","segments":[{start,
 *                     end,text,completed}]}` (the last few segments; times in s of received audio).
 * A segment marked `completed` is final; the last one, not completed, is the partial. The text a
 * session ends with is its client's: the completed segments, plus the last partial when it differs.
 *
 * Audio: the call's 8 kHz mu-law decoded and upsampled to 16 kHz float32 (what its client sends),
 * in 20 ms frames at real-time pace, the same frames and pace the Twilio simulator sends the edge
 * (its own client sends 256 ms chunks; 20 ms only removes a buffering delay from its latencies).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { connect } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { MULAW_DECODE_TABLE } from "@ozen/shared";
import { resample } from "../audio.js";
import { FRAME_MS } from "./stt-measure.js";
import type { CallTrace, Observation } from "./stt-measure.js";

export interface WhisperLiveServer {
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  close(): Promise<void>;
}

/** Starts WhisperLive's server (tools/bench-py/whisperlive_server.py in `python`) and waits for its port. */
export async function startWhisperLive(o: {
  python: string;
  repoRoot: string;
  port: number;
  modelDir: string;
  onLog?: (line: string) => void;
  timeoutMs?: number;
}): Promise<WhisperLiveServer> {
  const script = path.join(o.repoRoot, "tools/bench-py/whisperlive_server.py");
  const child = spawn(o.python, [script, String(o.port), o.modelDir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HF_HUB_OFFLINE: "1", PYTHONUNBUFFERED: "1" },
  });
  const tail: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      o.onLog?.(line);
    });
  }
  let exited: number | null = null;
  const exit = new Promise<void>((resolve) => child.once("exit", (code) => ((exited = code ?? -1), resolve())));
  const deadline = Date.now() + (o.timeoutMs ?? 120_000);
  while (!(await portOpen(o.port))) {
    if (exited !== null) throw new Error(`WhisperLive exited (${exited}) before listening:\n${tail.join("\n")}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`WhisperLive did not listen on port ${o.port} in time:\n${tail.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    port: o.port,
    pid: child.pid!,
    child,
    close: async () => {
      if (exited === null) child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exit;
      clearTimeout(killer);
    },
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

/** The call's mu-law as WhisperLive's client would send it: 16 kHz float32. */
export function mulawTo16kFloat(mulaw: Uint8Array): Float32Array {
  const x = new Float32Array(mulaw.length);
  for (let i = 0; i < mulaw.length; i++) x[i] = MULAW_DECODE_TABLE[mulaw[i]!]! / 32768;
  return resample(x, 8000, 16000);
}

interface WlSegment {
  start: number;
  end: number;
  text: string;
  completed: boolean;
}

/** Reads one server message's segments; undefined for other messages. */
export function parseSegments(value: unknown): WlSegment[] | undefined {
  const segs = (value as { segments?: unknown }).segments;
  if (!Array.isArray(segs)) return undefined;
  const out: WlSegment[] = [];
  for (const s of segs as Record<string, unknown>[]) {
    if (typeof s !== "object" || s === null || typeof s["text"] !== "string") continue;
    out.push({
      start: Number(s["start"]),
      end: Number(s["end"]),
      text: s["text"],
      completed: s["completed"] === true,
    });
  }
  return out;
}

/**
 * Turns WhisperLive's stream of segment lists into observations, keeping the transcript the way
 * its client does (a completed segment is added when it starts at or after the last one's end).
 */
export class WhisperLiveTranscript {
  readonly observations: Observation[] = [];
  private readonly finals: WlSegment[] = [];
  private last: WlSegment | undefined;

  add(segments: readonly WlSegment[], atMs: number): void {
    for (const [i, s] of segments.entries()) {
      if (s.completed) {
        const prev = this.finals[this.finals.length - 1];
        if (!prev || s.start >= prev.end) {
          this.finals.push(s);
          this.observations.push({
            kind: "final",
            atMs,
            audioStartMs: s.start * 1000,
            audioEndMs: s.end * 1000,
            text: s.text,
          });
        }
      } else if (i === segments.length - 1) {
        if (this.last?.text !== s.text) {
          this.observations.push({
            kind: "partial",
            atMs,
            audioStartMs: s.start * 1000,
            audioEndMs: s.end * 1000,
            text: s.text,
          });
        }
        this.last = s;
      }
    }
    const tail = segments[segments.length - 1];
    if (tail?.completed) this.last = undefined;
  }

  /** True while the last segment is not completed (or nothing came yet): WhisperLive is not done. */
  pending(): boolean {
    return this.last !== undefined || this.observations.length === 0;
  }

  /** The session's text as its client writes it out. */
  text(): string {
    const parts = this.finals.map((s) => s.text.trim());
    if (this.last && this.last.text.trim() !== parts[parts.length - 1]) parts.push(this.last.text.trim());
    return parts.filter((p) => p).join(" ");
  }
}

export interface AnchorSession extends CallTrace {
  readonly text: string;
  /** CPU seconds (`cpu`) between the first frame sent and the last; null without `cpu`. */
  readonly cpuS: number | null;
  /** Audio sent, s (the extra silence included). */
  readonly playedS: number;
}

/** One file through WhisperLive at real-time pace, then `END_OF_AUDIO`. */
export async function streamToWhisperLive(o: {
  port: number;
  /** The call audio (with its trailing silence), 8 kHz mu-law. */
  mulaw: Uint8Array;
  language: string;
  modelDir: string;
  uid: string;
  /** Longest wait for the server to close after END_OF_AUDIO. */
  drainMs?: number;
  /**
   * After the audio, the line stays open (more silence) while the last segment is not completed,
   * at most this long: WhisperLive completes a segment after it repeats `same_output_threshold`
   * times, and stops decoding at END_OF_AUDIO, so hanging up at once would cut its transcript.
   */
  maxExtraS?: number;
  /** Reads the server's CPU seconds, sampled at the first and the last frame sent. */
  cpu?: () => number;
}): Promise<AnchorSession> {
  const audio = mulawTo16kFloat(o.mulaw);
  const samplesPerFrame = (16000 * FRAME_MS) / 1000;
  const frames = Math.floor(audio.length / samplesPerFrame);
  const maxFrames = frames + Math.round(((o.maxExtraS ?? 10) * 1000) / FRAME_MS);
  const silence = new Float32Array(samplesPerFrame);
  const ws = new WebSocket(`ws://127.0.0.1:${o.port}`, { perMessageDeflate: false });
  const transcript = new WhisperLiveTranscript();
  let ready: () => void;
  let failed: (e: Error) => void;
  const readyP = new Promise<void>((res, rej) => ((ready = res), (failed = rej)));
  ws.on("message", (data) => {
    const at = Date.now();
    let v: unknown;
    try {
      v = JSON.parse(data.toString());
    } catch {
      return;
    }
    const m = v as { message?: unknown; status?: unknown };
    if (m.message === "SERVER_READY") ready();
    else if (m.status === "ERROR" || m.status === "WAIT") failed(new Error(`WhisperLive: ${data.toString()}`));
    const segs = parseSegments(v);
    if (segs?.length) transcript.add(segs, at);
  });
  const closed = new Promise<void>((r) => ws.once("close", () => r()));
  await new Promise<void>((res, rej) => (ws.once("open", () => res()), ws.once("error", rej)));
  ws.send(
    JSON.stringify({
      uid: o.uid,
      language: o.language,
      task: "transcribe",
      model: o.modelDir,
      use_vad: true,
      send_last_n_segments: 10,
      no_speech_thresh: 0.45,
      clip_audio: false,
      same_output_threshold: 10,
    }),
  );
  await Promise.race([
    readyP,
    new Promise((_, rej) => setTimeout(() => rej(new Error("WhisperLive: no SERVER_READY in 120 s")), 120_000)),
  ]);

  const frameSentAtMs: number[] = [];
  let cpuStart: number | undefined;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const done = frameSentAtMs.length >= maxFrames || (frameSentAtMs.length >= frames && !transcript.pending());
      if (done || ws.readyState !== WebSocket.OPEN) return resolve();
      const due = Math.min(maxFrames, Math.floor((performance.now() - t0) / FRAME_MS) + 1);
      while (frameSentAtMs.length < due && ws.readyState === WebSocket.OPEN) {
        const i = frameSentAtMs.length;
        const chunk = i < frames ? audio.slice(i * samplesPerFrame, (i + 1) * samplesPerFrame) : silence;
        ws.send(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        frameSentAtMs.push(Date.now());
        if (i === 0 && o.cpu) cpuStart = o.cpu();
        if (i >= frames && !transcript.pending()) break;
      }
      setTimeout(tick, Math.max(1, FRAME_MS * frameSentAtMs.length - (performance.now() - t0)));
    };
    tick();
  });
  const cpuS = o.cpu && cpuStart !== undefined ? o.cpu() - cpuStart : null;
  if (ws.readyState === WebSocket.OPEN) ws.send(Buffer.from("END_OF_AUDIO"));
  await Promise.race([closed, new Promise((r) => setTimeout(r, o.drainMs ?? 2000))]);
  const closedAtMs = Date.now();
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  return {
    frameSentAtMs,
    observations: transcript.observations,
    closedAtMs,
    text: transcript.text(),
    cpuS,
    playedS: (frameSentAtMs.length * FRAME_MS) / 1000,
  };
}
