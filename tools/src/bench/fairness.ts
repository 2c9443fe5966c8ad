/**
 * ozen bench fairness: does a call fed faster than real time take other calls' share of the
 * engine? A real RelayServer (credentials on) in front of a stand-in engine with a fixed capacity
 * shared by every call: one FIFO that transcribes `--capacity` seconds of audio per second (the
 * shape of one whisper worker or one GPU; it costs no CPU here, so the figures do not depend on
 * this machine's load). Two edge-like relay clients:
 *
 * - the normal call sends 100 ms blocks in real time; its latency is block sent -> the ack that
 *   commits it (the engine has transcribed it);
 * - the fast call sends at `--speed` times real time and, like the edge, reconnects with a fresh
 *   credential when the runner closes its socket and replays what was not committed.
 *
 * Four phases in the same run: the normal call alone (the baseline); beside a second call at
 * real time (its fair share: what any neighbour costs on a shared engine); beside the fast call
 * with the runner's pace bound out of reach (RELAY_BUFFER_MS 600 s: what a runner without pacing
 * does); beside the fast call with the pace bound at `--buffer-ms`. Prints JSON: each phase's
 * latency p50/p95/max and the ratios to the baseline and to the fair share. The runner's pacing
 * bounds a call to real time plus the relay buffer; how a shared engine orders the work of calls
 * inside that share (FIFO here) is the engine's scheduling, not measured apart here.
 *
 *   ozen bench fairness [--seconds S] [--speed X] [--capacity C] [--buffer-ms MS] [--json FILE]
 */
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { encodeAudioFrame, encodeControl, parseRunnerToEdge, percentile } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import { RelayServer } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../../stt-runner/src/engines/engine.js";
import { parseCommand, positive } from "../args.js";
import { BENCH_FAIRNESS } from "../commands.js";
import { newRelaySecret, relayHeaders } from "../relay-secret.js";

const BLOCK_MS = 100;
const BLOCK_SAMPLES = 800;

/** One engine of fixed capacity shared by every call, first come first served. */
class SharedCapacityEngine implements Engine {
  readonly name = "shared-capacity";
  /** Wall time (performance.now) the engine is busy until. */
  private busyUntilMs = 0;

  constructor(private readonly capacity: number) {}

  open(start: RelayStart, listener: EngineListener): EngineSession {
    let committed = start.resumeFromSeq * BLOCK_SAMPLES;
    let pending = 0;
    let drained: (() => void) | undefined;
    let ended = false;
    return {
      feed: (pcm, startSample) => {
        const now = performance.now();
        this.busyUntilMs = Math.max(now, this.busyUntilMs) + pcm.length / 8 / this.capacity;
        pending++;
        const endSample = startSample + pcm.length;
        setTimeout(() => {
          pending--;
          if (ended && pending === 0) drained?.();
          if (ended) return;
          committed = endSample;
          // a final moves the commit point: the runner acknowledges it
          listener.final({ text: "", audioStartMs: startSample / 8, audioEndMs: endSample / 8 });
        }, this.busyUntilMs - now);
      },
      get committedSample() {
        return committed;
      },
      end: async () => {
        ended = true;
        if (pending > 0) await new Promise<void>((r) => (drained = r));
      },
    };
  }
}

function startOf(callSid: string, resumeFromSeq: number): string {
  return encodeControl({
    type: "start",
    callSid,
    streamSid: `MZ${callSid}`,
    accountSid: "AC",
    sampleRateHz: 8000,
    encoding: "pcm16le",
    blockMs: BLOCK_MS,
    tracks: ["inbound"],
    customParameters: {},
    resumeFromSeq,
  });
}

const frame = (callSid: string, seq: number) =>
  encodeAudioFrame({
    callId: callSid,
    seq,
    startSample: seq * BLOCK_SAMPLES,
    sampleRateHz: 8000,
    pcm: new Int16Array(BLOCK_SAMPLES),
  });

/** A relay socket for `callSid`, open; `onText` gets each parsed runner message. */
async function dial(
  port: number,
  secret: string,
  callSid: string,
  onMessage: (m: ReturnType<typeof parseRunnerToEdge>) => void,
): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, {
    perMessageDeflate: false,
    headers: await relayHeaders(secret, callSid),
  });
  ws.on("message", (data, binary) => {
    if (!binary) onMessage(parseRunnerToEdge(data.toString()));
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  return ws;
}

/** The normal call: real time for `seconds`; resolves with each block's latency to its commit, ms. */
async function normalCall(port: number, secret: string, seconds: number): Promise<number[]> {
  const callSid = `CAnormal${Date.now()}`;
  const blocks = (seconds * 1000) / BLOCK_MS;
  const sentAt = new Float64Array(blocks);
  const latencies: number[] = [];
  let committedTo = -1;
  const ws = await dial(port, secret, callSid, (r) => {
    if (!r.ok || r.message.type !== "ack") return;
    const committed = Math.min(r.message.seq, r.message.committedSeq ?? r.message.seq);
    const now = performance.now();
    for (let k = committedTo + 1; k <= committed && k < blocks; k++) latencies.push(now - sentAt[k]!);
    committedTo = Math.max(committedTo, committed);
  });
  ws.send(startOf(callSid, 0));
  const t0 = performance.now();
  for (let k = 0; k < blocks; k++) {
    const wait = t0 + k * BLOCK_MS - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt[k] = performance.now();
    ws.send(frame(callSid, k));
  }
  const deadline = performance.now() + 60_000;
  while (committedTo < blocks - 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  ws.send(encodeControl({ type: "stop", reason: "bench", lastSeq: blocks - 1 }));
  ws.close();
  return latencies;
}

interface FastCallFigures {
  /** Audio the fast call sent as new blocks (not replays), s. */
  sentS: number;
  /** Sockets the runner closed for it (too fast), and by which codes. */
  closes: Record<string, number>;
}

/**
 * The fast call: `speed` times real time until `stop` is set, reconnecting (after `redialMs`)
 * and replaying from its last committed block whenever the runner closes it, as the edge does.
 */
function fastCall(
  port: number,
  secret: string,
  speed: number,
  redialMs: number,
  stop: { stopped: boolean },
): Promise<FastCallFigures> {
  const callSid = `CAfast${Date.now()}`;
  const figures: FastCallFigures = { sentS: 0, closes: {} };
  let committed = -1;
  let next = 0;
  const t0 = performance.now();
  return (async () => {
    while (!stop.stopped) {
      const ws = await dial(port, secret, callSid, (r) => {
        if (r.ok && r.message.type === "ack") committed = Math.max(committed, r.message.committedSeq ?? -1);
      });
      let open = true;
      const closed = new Promise<void>((resolve) =>
        ws.once("close", (code) => {
          open = false;
          figures.closes[code] = (figures.closes[code] ?? 0) + 1;
          resolve();
        }),
      );
      // like the edge: start from the oldest block not committed, replay up to the newest made
      const from = committed + 1;
      ws.send(startOf(callSid, from));
      for (let k = from; k < next && open; k++) ws.send(frame(callSid, k));
      while (open && !stop.stopped) {
        const due = t0 + (next * BLOCK_MS) / speed - performance.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        if (!open || stop.stopped) break;
        ws.send(frame(callSid, next++));
        figures.sentS = (next * BLOCK_MS) / 1000;
      }
      if (open) {
        ws.close();
        break;
      }
      await closed;
      await new Promise((r) => setTimeout(r, redialMs));
    }
    return figures;
  })();
}

interface LatencySummaryMs {
  blocks: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

function summary(latencies: number[]): LatencySummaryMs {
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    blocks: latencies.length,
    p50Ms: round(percentile(latencies, 0.5) ?? NaN),
    p95Ms: round(percentile(latencies, 0.95) ?? NaN),
    maxMs: round(Math.max(...latencies)),
  };
}

/** One phase: a fresh runner with the pace bound at `relayBufferMs`; the fast call beside the normal one or not. */
async function phase(o: {
  seconds: number;
  speed: number;
  capacity: number;
  relayBufferMs: number;
  neighbourSpeed: number | undefined;
}): Promise<{ normal: LatencySummaryMs; fast?: FastCallFigures; runner: Record<string, number> }> {
  const secret = newRelaySecret();
  const server = new RelayServer({
    engine: new SharedCapacityEngine(o.capacity),
    port: 0,
    relaySecret: secret,
    relayBufferMs: o.relayBufferMs,
    resumeGraceMs: 10_000,
    log: () => {},
  });
  const port = await server.listen();
  try {
    const stop = { stopped: false };
    const fast = o.neighbourSpeed !== undefined ? fastCall(port, secret, o.neighbourSpeed, 200, stop) : undefined;
    const latencies = await normalCall(port, secret, o.seconds);
    stop.stopped = true;
    const fastFigures = await fast;
    return {
      normal: summary(latencies),
      ...(fastFigures ? { fast: fastFigures } : {}),
      runner: { blocksTooFast: server.counters.blocksTooFast, blocks: server.counters.blocks },
    };
  } finally {
    await server.close();
  }
}

export async function benchFairness(args: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_FAIRNESS, args);
  const seconds = positive("seconds", values.seconds, 20);
  const speed = positive("speed", values.speed, 5);
  const capacity = positive("capacity", values.capacity, 3);
  const bufferMs = positive("buffer-ms", values["buffer-ms"], 2000);
  const base = { seconds, speed, capacity };
  console.error(`bench fairness: ${seconds} s per phase, fast call at ${speed}x, engine capacity ${capacity}x`);
  const alone = await phase({ ...base, relayBufferMs: bufferMs, neighbourSpeed: undefined });
  const fairShare = await phase({ ...base, relayBufferMs: bufferMs, neighbourSpeed: 1 });
  const unpaced = await phase({ ...base, relayBufferMs: 600_000, neighbourSpeed: speed });
  const paced = await phase({ ...base, relayBufferMs: bufferMs, neighbourSpeed: speed });
  const ratioTo = (to: { normal: LatencySummaryMs }) => (p: { normal: LatencySummaryMs }, k: "p50Ms" | "p95Ms") =>
    Math.round((p.normal[k] / to.normal[k]) * 100) / 100;
  const ratio = ratioTo(alone);
  const ratioFair = ratioTo(fairShare);
  const result = {
    bench: "fairness",
    engine: `one shared FIFO transcribing ${capacity} s of audio per s (a stand-in: costs no CPU)`,
    fastCallSpeed: speed,
    paceBufferMs: bufferMs,
    seconds,
    phases: { alone, besideRealTime: fairShare, unpacedBesideFast: unpaced, pacedBesideFast: paced },
    normalLatencyVsAlone: {
      besideRealTime: { p50: ratio(fairShare, "p50Ms"), p95: ratio(fairShare, "p95Ms") },
      unpaced: { p50: ratio(unpaced, "p50Ms"), p95: ratio(unpaced, "p95Ms") },
      paced: { p50: ratio(paced, "p50Ms"), p95: ratio(paced, "p95Ms") },
    },
    normalLatencyVsFairShare: {
      unpaced: { p50: ratioFair(unpaced, "p50Ms"), p95: ratioFair(unpaced, "p95Ms") },
      paced: { p50: ratioFair(paced, "p50Ms"), p95: ratioFair(paced, "p95Ms") },
    },
    pacedWithin20PctOfAlone: ratio(paced, "p50Ms") <= 1.2 && ratio(paced, "p95Ms") <= 1.2,
  };
  const text = JSON.stringify(result, null, 2);
  console.log(text);
  if (values.json) writeFileSync(values.json, text + "\n");
}
