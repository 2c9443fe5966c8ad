/**
 * ozen bench soak: does the edge's memory stay flat when calls keep coming? The edge on real
 * workerd (Miniflare) with the null runner; R rounds, each of N simulated calls of M seconds at
 * real-time pace (from another process, as `bench ingest` places them), then an idle settle.
 *
 * Per round: frames sent (simulator) and received (each call's stats), and the resident memory
 * (VmRSS from /proc) of workerd and of the runner, sampled once a second during the round (peak)
 * and after the settle (the figure that must stay flat), with the load average. Memory that only
 * V8 has not collected yet shows as growth that stops; memory something keeps shows as growth
 * every round, so more rounds tell the two apart.
 *
 * `--baseline`: the same rounds, interleaved, against a minimal Worker on its own workerd (one
 * Durable Object per call that takes the Twilio socket, parses each message and writes a small
 * stats object to its storage once a second, as CallSession does): what the runtime itself keeps
 * for that traffic, to tell ozen's growth from workerd's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { loadAudio8k } from "../audio.js";
import { parseCommand, positive } from "../args.js";
import { BENCH_SOAK } from "../commands.js";
import { freePort, startLocalStack } from "../local-stack.js";
import { evaluationPath, testSpeech } from "../speech-data.js";
import { findDescendants, spawnTs } from "./procs.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const AUTH = "bench-auth-token";
const API = "bench-api-token";
const MB = 1024 * 1024;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resident memory of a process (VmRSS), bytes; null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

const mb = (bytes: number | null) => (bytes === null ? null : Math.round((bytes / MB) * 10) / 10);

export interface SoakRound {
  round: number;
  frames_sent: number;
  /** Media frames the edge took in, over every call of the round (each call's stats). */
  frames_received: number;
  /** Blocks the runner never acknowledged (dropped while away, or lost at the end). */
  blocks_lost: number;
  call_errors: string[];
  /** After the round and the idle settle, MB. */
  workerd_rss_mb: number | null;
  /** Highest sample during the round, MB. */
  workerd_rss_peak_mb: number | null;
  runner_rss_mb: number | null;
  runner_rss_peak_mb: number | null;
  /** 1, 5 and 15 minute load averages at the end of the round. */
  loadavg: number[];
}

/**
 * The minimal Worker of `--baseline`: Twilio's webhook answers TwiML pointing at
 * `/twilio/stream/{CallSid}`, routed to one Durable Object per call that parses each message,
 * counts media frames, writes a ~2 KB stats object to its storage once a second and closes on
 * `stop`; `/calls/{CallSid}/stats` reads the count back. Nothing else.
 */
const BASELINE_WORKER = `
export class Call {
  constructor(ctx) { this.ctx = ctx; this.framesIn = 0; this.lastPutMs = 0; }
  async fetch(request) {
    if (new URL(request.url).pathname.endsWith("/stats")) return Response.json({ framesIn: this.framesIn });
    const pair = new WebSocketPair();
    const server = pair[1];
    server.accept();
    server.addEventListener("message", (ev) => {
      const m = JSON.parse(ev.data);
      if (m.event === "media") {
        this.framesIn++;
        const now = Date.now();
        if (now - this.lastPutMs >= 1000) {
          this.lastPutMs = now;
          this.ctx.storage.put("stats", { framesIn: this.framesIn, at: now, pad: "x".repeat(2000) });
        }
      } else if (m.event === "stop") server.close(1000, "call ended");
    });
    return new Response(null, {
      status: 101,
      webSocket: pair[0],
      headers: { "Sec-WebSocket-Protocol": "audio.twilio.com" },
    });
  }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/twilio/voice") {
      const sid = new URLSearchParams(await request.text()).get("CallSid");
      const stream = "ws://" + url.host + "/twilio/stream/" + sid;
      return new Response('<Response><Connect><Stream url="' + stream + '"></Stream></Connect></Response>');
    }
    const m = /^\\/(?:twilio\\/stream|calls)\\/([^/]+)/.exec(url.pathname);
    if (!m) return new Response("not found", { status: 404 });
    return env.CALL.get(env.CALL.idFromName(m[1])).fetch(request);
  },
};
`;

async function startBaseline(port: number): Promise<{ url: string; close(): Promise<void> }> {
  const mf = new Miniflare({
    modules: true,
    script: BASELINE_WORKER,
    compatibilityDate: "2026-04-01",
    host: "127.0.0.1",
    port,
    durableObjects: { CALL: { className: "Call", useSQLite: true } },
    durableObjectsPersist: false,
    handleRuntimeStdio: () => {},
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return { url, close: () => mf.dispose() };
}

/** The default audio: real 8 kHz telephony speech when the shared data is here, else the project's own. */
function defaultAudio(): string {
  const asterisk = evaluationPath("en/asterisk-8k", "demo-thanks.wav");
  return "path" in asterisk ? asterisk.path : testSpeech("directory").path;
}

/** Samples the RSS of `pids` once a second until stopped; keeps each one's peak. */
function sampleRss(pids: Record<string, number>): { stop(): Record<string, number | null> } {
  const peak: Record<string, number | null> = {};
  const take = () => {
    for (const [name, pid] of Object.entries(pids)) {
      const r = rssBytes(pid);
      if (r !== null && r > (peak[name] ?? 0)) peak[name] = r;
    }
  };
  take();
  const timer = setInterval(take, 1000);
  return {
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** One round of `calls` simulated calls of `seconds`, in a simulator process. */
async function placeRound(
  edgeUrl: string,
  o: { calls: number; seconds: number; audio: string },
): Promise<{ framesSent: number; errors: string[]; callSids: string[] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ozen-soak-"));
  const out = path.join(dir, "calls.json");
  const sim = spawnTs(path.join(repo, "tools/src/cli.ts"), [
    "call",
    edgeUrl,
    "--audio",
    o.audio,
    "--calls",
    String(o.calls),
    "--seconds",
    String(o.seconds),
    "--auth-token",
    AUTH,
    "--json",
    out,
  ]);
  const code = await sim.exited;
  try {
    const s = JSON.parse(readFileSync(out, "utf8")) as { frames_sent: number; errors: string[]; call_sids: string[] };
    if (code !== 0 && s.errors.length === 0) throw new Error(`simulator exited ${code}`);
    return { framesSent: s.frames_sent, errors: s.errors, callSids: s.call_sids };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface CallStatsView {
  framesIn: number;
  relay: { blocksDropped: number; lostAtEnd: number };
}

/** What the edge says it took in, over the round's calls. */
async function edgeFigures(edgeUrl: string, callSids: string[]): Promise<{ framesIn: number; lost: number }> {
  let framesIn = 0;
  let lost = 0;
  for (const sid of callSids) {
    const res = await fetch(`${edgeUrl}/calls/${sid}/stats`, { headers: { Authorization: `Bearer ${API}` } });
    const s = (await res.json()) as CallStatsView;
    framesIn += s.framesIn ?? 0;
    lost += (s.relay?.blocksDropped ?? 0) + (s.relay?.lostAtEnd ?? 0);
  }
  return { framesIn, lost };
}

/** One system under soak: where its calls go, and the processes whose memory is its own. */
interface Target {
  readonly name: string;
  readonly url: string;
  readonly pids: Record<string, number>;
  readonly startRssMb: Record<string, number | null>;
  readonly rounds: SoakRound[];
}

/** Last round's RSS against the first round's, %. */
function growthPct(rounds: readonly SoakRound[], key: "workerd_rss_mb" | "runner_rss_mb"): number | null {
  const first = rounds[0]?.[key];
  const last = rounds[rounds.length - 1]?.[key];
  return first && last ? Math.round(((last - first) / first) * 1000) / 10 : null;
}

export async function benchSoak(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_SOAK, argv);
  const calls = positive("calls", values.calls, 20);
  const seconds = positive("seconds", values.seconds, 60);
  const rounds = positive("rounds", values.rounds, 4);
  const settleS = positive("settle-s", values["settle-s"], 15, true);
  const audio = values.audio ?? defaultAudio();
  loadAudio8k(audio); // fail early on a bad file, in this process

  const stack = await startLocalStack({ runner: { process: "null" }, authToken: AUTH, apiToken: API });
  const closers: (() => Promise<void>)[] = [() => stack.close()];
  try {
    const known = new Set<number>();
    /** The workerd process started last (each Miniflare has its own). */
    const workerd = () => {
      const all = findDescendants(process.pid, "workerd");
      const mine = all.filter((pid) => !known.has(pid));
      if (mine.length !== 1) throw new Error(`expected one new workerd process under this one, found ${mine.length}`);
      known.add(mine[0]!);
      return mine[0]!;
    };
    const rss = (pids: Record<string, number>) =>
      Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, mb(rssBytes(pid))]));
    const ozenPids = { workerd: workerd(), runner: stack.runnerProcess!.child.pid! };
    const targets: Target[] = [{ name: "ozen", url: stack.url, pids: ozenPids, startRssMb: rss(ozenPids), rounds: [] }];
    if (values.baseline) {
      const baseline = await startBaseline(await freePort());
      closers.push(() => baseline.close());
      const pids = { workerd: workerd() };
      targets.push({ name: "baseline", url: baseline.url, pids, startRssMb: rss(pids), rounds: [] });
    }
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        process.stderr.write(`bench soak: ${t.name}, round ${round}/${rounds}, ${calls} calls x ${seconds} s ...\n`);
        const sampler = sampleRss(t.pids);
        const placed = await placeRound(t.url, { calls, seconds, audio });
        const edgeSide = await edgeFigures(t.url, placed.callSids);
        const peak = sampler.stop();
        await sleep(settleS * 1000);
        t.rounds.push({
          round,
          frames_sent: placed.framesSent,
          frames_received: edgeSide.framesIn,
          blocks_lost: edgeSide.lost,
          call_errors: placed.errors,
          workerd_rss_mb: mb(rssBytes(t.pids["workerd"]!)),
          workerd_rss_peak_mb: mb(peak["workerd"] ?? null),
          runner_rss_mb: t.pids["runner"] === undefined ? null : mb(rssBytes(t.pids["runner"])),
          runner_rss_peak_mb: mb(peak["runner"] ?? null),
          loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
        });
      }
    }
    const [ozen, baseline] = targets;
    const result = {
      calls,
      seconds,
      rounds,
      settle_s: settleS,
      start_rss_mb: ozen!.startRssMb,
      results: ozen!.rounds,
      workerd_growth_after_first_pct: growthPct(ozen!.rounds, "workerd_rss_mb"),
      runner_growth_after_first_pct: growthPct(ozen!.rounds, "runner_rss_mb"),
      frames_complete: ozen!.rounds.every((r) => r.frames_received === r.frames_sent && r.call_errors.length === 0),
      ...(baseline
        ? {
            baseline: {
              start_rss_mb: baseline.startRssMb,
              results: baseline.rounds.map((r) => ({ ...r, runner_rss_mb: undefined, runner_rss_peak_mb: undefined })),
              workerd_growth_after_first_pct: growthPct(baseline.rounds, "workerd_rss_mb"),
            },
          }
        : {}),
      audio: path.relative(repo, audio),
      machine: { cpus: os.cpus().length, node: process.version },
    };
    const text = JSON.stringify(result, null, 2);
    if (values.json) writeFileSync(values.json, text + "\n");
    console.log(text);
  } finally {
    for (const close of closers.reverse()) await close();
  }
}
