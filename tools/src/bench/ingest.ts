/**
 * ozen bench ingest: the edge on real workerd (Miniflare) with the null runner, N simulated
 * calls at real-time pace from another process, against the naive handler in the same run.
 *
 * Per-frame cost is workerd's CPU time (/proc) over the steady window divided by the frames sent
 * in it; latency is measured from outside (simulator send -> the edge's ack mark for the block
 * holding that frame). The relay round trip is the Durable Object's own (whole-ms clock).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { histogramPercentile, mergeMs } from "@ozen/shared";
import type { MsHistogram } from "@ozen/shared";
import { loadAudio8k } from "../audio.js";
import { parseCommand, positive } from "../args.js";
import { BENCH_INGEST } from "../commands.js";
import { startLocalStack } from "../local-stack.js";
import { evaluationPath, testSpeech } from "../speech-data.js";
import { measureDecode } from "./decode.js";
import { cpuSeconds, findDescendants, spawnTs } from "./procs.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const AUTH = "bench-auth-token";
const API = "bench-api-token";

export interface IngestRun {
  calls: number;
  seconds: number;
  frames_sent: number;
  frames_received: number;
  frames_dropped: number;
  blocks_relayed: number;
  edge_cpu_us_per_frame: number | null;
  ack_ms_p50: number | null;
  ack_ms_p99: number | null;
  relay_rtt_ms_p50: number | null;
  relay_rtt_ms_p99: number | null;
  greeting_ms_p50: number | null;
  greeting_ms_max: number | null;
  call_errors: string[];
}

/** The default bench audio: real 8 kHz telephony speech when the shared data is here, else the project's own. */
function defaultAudio(): string {
  const asterisk = evaluationPath("en/asterisk-8k", "demo-thanks.wav");
  return "path" in asterisk ? asterisk.path : testSpeech("directory").path;
}

async function runPhase(
  edgeUrl: string,
  workerdPid: number,
  o: { calls: number; seconds: number; warmupS: number; audio: string; naive: boolean },
): Promise<
  Omit<IngestRun, "relay_rtt_ms_p50" | "relay_rtt_ms_p99" | "frames_received" | "frames_dropped" | "blocks_relayed"> & {
    callSids: string[];
  }
> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-bench-"));
  const out = path.join(dir, "calls.json");
  const args = [
    "call",
    edgeUrl,
    "--audio",
    o.audio,
    "--calls",
    String(o.calls),
    "--seconds",
    String(o.seconds + o.warmupS),
    "--warmup-ms",
    String(o.warmupS * 1000),
    "--auth-token",
    AUTH,
    "--json",
    out,
    "--phases",
  ];
  if (o.naive) args.push("--naive");
  const sim = spawnTs(path.join(repo, "tools/src/cli.ts"), args);
  const marks: { cpu: number; frames: number }[] = [];
  sim.onLine((line) => {
    const m = /^PHASE (steady|end) (\d+)/.exec(line);
    if (m) marks.push({ cpu: cpuSeconds(workerdPid), frames: Number(m[2]) });
  });
  const code = await sim.exited;
  const summary = JSON.parse(readFileSync(out, "utf8")) as {
    frames_sent: number;
    ack_ms_p50: number | null;
    ack_ms_p99: number | null;
    greeting_ms_p50: number | null;
    greeting_ms_max: number | null;
    errors: string[];
    call_sids: string[];
  };
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0 && summary.errors.length === 0) throw new Error(`simulator exited ${code}`);
  const steady =
    marks.length === 2 ? { cpu: marks[1]!.cpu - marks[0]!.cpu, frames: marks[1]!.frames - marks[0]!.frames } : null;
  return {
    calls: o.calls,
    seconds: o.seconds,
    frames_sent: summary.frames_sent,
    edge_cpu_us_per_frame:
      steady && steady.frames > 0 ? Math.round((steady.cpu / steady.frames) * 1e6 * 10) / 10 : null,
    ack_ms_p50: round(summary.ack_ms_p50),
    ack_ms_p99: round(summary.ack_ms_p99),
    greeting_ms_p50: round(summary.greeting_ms_p50),
    greeting_ms_max: round(summary.greeting_ms_max),
    call_errors: summary.errors,
    callSids: summary.call_sids,
  };
}

function round(x: number | null): number | null {
  return x === null ? null : Math.round(x * 100) / 100;
}

interface CallStatsView {
  framesIn: number;
  blocksMade: number;
  relay: { blocksDropped: number; pendingBlocks: number; lostAtEnd: number };
  relayRttMsHistogram: MsHistogram;
}

async function edgeSide(edgeUrl: string, callSids: string[], naive: boolean) {
  let framesIn = 0;
  let dropped = 0;
  let blocks = 0;
  const rtt: MsHistogram = {};
  // the edge finishes each call (flush, last acks) just after the simulator hangs up
  await new Promise((r) => setTimeout(r, 500));
  for (const sid of callSids) {
    const res = await fetch(`${edgeUrl}/calls/${sid}/stats${naive ? "?naive" : ""}`, {
      headers: { Authorization: `Bearer ${API}` },
    });
    const s = (await res.json()) as CallStatsView;
    framesIn += s.framesIn;
    dropped += s.relay.blocksDropped + s.relay.lostAtEnd;
    blocks += s.blocksMade;
    mergeMs(rtt, s.relayRttMsHistogram);
  }
  return {
    frames_received: framesIn,
    frames_dropped: dropped,
    blocks_relayed: blocks,
    relay_rtt_ms_p50: histogramPercentile(rtt, 0.5),
    relay_rtt_ms_p99: histogramPercentile(rtt, 0.99),
  };
}

export async function benchIngest(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_INGEST, argv);
  const calls = positive("calls", values.calls, 100);
  const seconds = positive("seconds", values.seconds, 20);
  const warmupS = positive("warmup-s", values["warmup-s"], 3, true);
  const audio = values.audio ?? defaultAudio();
  loadAudio8k(audio); // fail early on a bad file, in this process

  const stack = await startLocalStack({
    runner: { process: "null" },
    authToken: AUTH,
    apiToken: API,
    vars: { INGEST_ACK: "block", BENCH_NAIVE: "on" },
  });
  const edgeUrl = stack.url;
  try {
    const workerd = findDescendants(process.pid, "workerd");
    if (workerd.length !== 1) throw new Error(`expected one workerd process under this one, found ${workerd.length}`);
    const workerdPid = workerd[0]!;
    const result: Record<string, unknown> = {};
    const phases: [string, boolean][] = values["skip-naive"]
      ? [["ozen", false]]
      : [
          ["ozen", false],
          ["naive", true],
        ];
    for (const [name, naive] of phases) {
      process.stderr.write(`bench ingest: ${name} handler, ${calls} calls x ${seconds + warmupS} s ...\n`);
      const { callSids, ...run } = await runPhase(edgeUrl, workerdPid, { calls, seconds, warmupS, audio, naive });
      const side = await edgeSide(edgeUrl, callSids, naive);
      const figures: IngestRun = { ...run, ...side };
      if (naive) result["naive"] = figures;
      else Object.assign(result, figures);
    }
    process.stderr.write("bench ingest: decode microbenchmarks ...\n");
    const mulaw = loadAudio8k(audio).mulaw;
    const frames = Array.from({ length: Math.floor(mulaw.length / 160) }, (_, i) =>
      mulaw.slice(i * 160, (i + 1) * 160),
    );
    Object.assign(result, measureDecode(frames));
    result["audio"] = path.relative(repo, audio);
    result["warmup_s"] = warmupS;
    result["machine"] = { cpus: os.cpus().length, node: process.version };
    const text = JSON.stringify(result, null, 2);
    if (values.json) writeFileSync(values.json, text + "\n");
    console.log(text);
  } finally {
    await stack.close();
  }
}
