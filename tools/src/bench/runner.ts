/**
 * ozen bench runner: the stt-runner in its own process with the Google engine, against the
 * loopback Speech service (Google's protos; one final word per 100 ms block, answered at once),
 * fed by N edge-like relay clients at real-time pace. LINEAR16 and MULAW in the same run.
 *
 * - runner_us_per_block: the runner process's CPU (/proc) over the run / blocks.
 * - added_latency_ms: relay client sends block k -> receives the final for block k. Google's own
 *   recognition time is zero here, so this is what ozen adds: relay in, engine, gRPC, policy,
 *   relay back.
 * - audio_at_risk_ms: audio whose word never came back or came back twice, across rollovers
 *   forced every 2 s of stream audio (must be 0).
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { encodeAudioFrame, encodeControl, parseRunnerToEdge, percentile } from "@ozen/shared";
import { startSpeechServer, wordBlock } from "@ozen/stt-runner/testing";
import { parseCommand, positive } from "../args.js";
import { BENCH_RUNNER } from "../commands.js";
import { cpuSeconds, spawnTs } from "./procs.js";
import { newRelaySecret, relayHeaders } from "../relay-secret.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

interface Run {
  encoding: string;
  calls: number;
  seconds: number;
  blocks: number;
  runner_us_per_block: number;
  bytes_to_google: number;
  bytes_per_audio_s: number;
  added_latency_ms_p50: number | null;
  added_latency_ms_p99: number | null;
  streams_opened: number;
  audio_at_risk_ms: number;
  duplicate_words: number;
}

async function run(encoding: "LINEAR16" | "MULAW", calls: number, seconds: number): Promise<Run> {
  const speech = await startSpeechServer();
  speech.behaviour.wordPerBlock = true;
  const relaySecret = newRelaySecret();
  const runner = spawnTs(path.join(repo, "stt-runner/src/main.ts"), ["--port", "0", "--engine", "google"], {
    RELAY_SECRET: relaySecret,
    GOOGLE_ENDPOINT: `127.0.0.1:${speech.port}`,
    GOOGLE_INSECURE: "true",
    GOOGLE_ENCODING: encoding,
    GOOGLE_RESTART_AFTER_S: "2",
    GOOGLE_MAX_STREAM_S: "3",
    // Google alone: this measures the runner's Google path (no whisper failover or final pass)
    OZEN_FALLBACK: "none",
    METADATA_SERVER_DETECTION: "none",
  });
  const port = Number((await runner.waitFor(/"port":(\d+)/))[1]);
  const blocks = seconds * 10;
  const latencies: number[] = [];
  let missing = 0;
  let duplicates = 0;
  const cpu0 = cpuSeconds(runner.child.pid!);
  await Promise.all(
    Array.from({ length: calls }, async (_, c) => {
      await new Promise((r) => setTimeout(r, (c * 100) / calls));
      const callSid = `CAbench${c}`;
      const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, {
        perMessageDeflate: false,
        headers: await relayHeaders(relaySecret, callSid),
      });
      await new Promise((r) => ws.once("open", r));
      const sentAt = new Float64Array(blocks);
      const seen = new Uint8Array(blocks);
      let ended!: () => void;
      const done = new Promise<void>((r) => (ended = r));
      ws.on("message", (data, isBinary) => {
        if (isBinary) return;
        const m = parseRunnerToEdge(data.toString());
        if (!m.ok || m.message.type !== "event") return;
        const e = m.message.event;
        if (e.type === "call.ended") ended();
        if (e.type !== "final") return;
        const k = Number(/w(\d+)/.exec(e.rawText)?.[1]);
        if (!(k >= 0 && k < blocks)) return;
        if (seen[k]! > 0) {
          duplicates++;
        } else {
          seen[k] = 1;
          latencies.push(performance.now() - sentAt[k]!);
        }
      });
      ws.send(
        encodeControl({
          type: "start",
          callSid,
          streamSid: `MZ${c}`,
          accountSid: "AC",
          sampleRateHz: 8000,
          encoding: "pcm16le",
          blockMs: 100,
          tracks: ["inbound"],
          customParameters: {},
          resumeFromSeq: 0,
        }),
      );
      const t0 = performance.now();
      for (let k = 0; k < blocks; k++) {
        const wait = t0 + k * 100 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        sentAt[k] = performance.now();
        ws.send(
          encodeAudioFrame({
            callId: callSid,
            seq: k,
            startSample: k * 800,
            sampleRateHz: 8000,
            pcm: wordBlock(k),
          }),
        );
      }
      ws.send(encodeControl({ type: "stop", reason: "bench", lastSeq: blocks - 1 }));
      await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
      missing += seen.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
      ws.close();
    }),
  );
  const cpu = cpuSeconds(runner.child.pid!) - cpu0;
  runner.child.kill("SIGTERM");
  await runner.exited;
  const bytes = speech.seen.reduce(
    (n, s) =>
      n +
      s.requests
        .slice(1)
        .reduce(
          (m: number, r: { audio_content?: Buffer; audio?: Buffer }) => m + ((r.audio_content ?? r.audio)?.length ?? 0),
          0,
        ),
    0,
  );
  speech.close();
  const round = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    encoding,
    calls,
    seconds,
    blocks: calls * blocks,
    runner_us_per_block: Math.round((cpu / (calls * blocks)) * 1e6 * 10) / 10,
    bytes_to_google: bytes,
    bytes_per_audio_s: Math.round(bytes / (calls * seconds)),
    added_latency_ms_p50: round(percentile(latencies, 0.5)),
    added_latency_ms_p99: round(percentile(latencies, 0.99)),
    streams_opened: speech.seen.length,
    audio_at_risk_ms: (missing + duplicates) * 100,
    duplicate_words: duplicates,
  };
}

export async function benchRunner(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_RUNNER, argv);
  const calls = positive("calls", values.calls, 20);
  const seconds = positive("seconds", values.seconds, 10);
  const result: Record<string, unknown> = {};
  for (const encoding of ["LINEAR16", "MULAW"] as const) {
    process.stderr.write(`bench runner: ${encoding}, ${calls} calls x ${seconds} s ...\n`);
    result[encoding] = await run(encoding, calls, seconds);
  }
  const text = JSON.stringify(result, null, 2);
  if (values.json) writeFileSync(values.json, text + "\n");
  console.log(text);
}
