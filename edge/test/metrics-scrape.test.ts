/**
 * Metrics a user can scrape, after a real call: the runner as deployed (`main.ts`, its own process,
 * on the Google engine against the Speech fake that speaks Google's protos) and the edge on
 * workerd; both `/metrics` read with the Prometheus project's own text parser
 * (`prometheus-scrape.ts`).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSpeechServer } from "@ozen/stt-runner/testing";
import type { SpeechServer } from "@ozen/stt-runner/testing";
import { histogramOf, parseScrape, scraped, valueOf } from "./prometheus-scrape.js";
import type { ScrapedFamily } from "./prometheus-scrape.js";
import { RELAY_SECRET, TwilioCall, bearer, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const RUNNER_METRICS_TOKEN = "runner-metrics-token-0123456789";

let speech: SpeechServer;
let runner: { port: number; stderr: string[]; stop(): Promise<void> };
let edge: TestEdge;

async function startRunnerProcess(speechPort: number): Promise<typeof runner> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repo, "stt-runner/src/main.ts"), "--port", "0"], {
    cwd: repo,
    env: {
      ...process.env,
      OZEN_ENGINE: "google",
      OZEN_FALLBACK: "none",
      RELAY_SECRET,
      RUNNER_METRICS_TOKEN,
      OZEN_LOG_LEVEL: "info",
      GOOGLE_ENDPOINT: `127.0.0.1:${speechPort}`,
      GOOGLE_INSECURE: "true",
      // a stream rollover within the call: the restarts counter has something to count
      GOOGLE_RESTART_AFTER_S: "1",
      GOOGLE_MAX_STREAM_S: "2",
      METADATA_SERVER_DETECTION: "none",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stderr: string[] = [];
  let rest = "";
  child.stderr.on("data", (d: Buffer) => {
    const parts = (rest + d.toString()).split("\n");
    rest = parts.pop() ?? "";
    stderr.push(...parts.filter((l) => l !== ""));
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"port":(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr.join("\n")}`)));
  });
  return {
    port,
    stderr,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<ScrapedFamily[]> {
  const res = await fetch(url, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseScrape(await res.text());
}

const runnerMetrics = () =>
  scrape(`http://127.0.0.1:${runner.port}/metrics`, { Authorization: `Bearer ${RUNNER_METRICS_TOKEN}` });
const edgeMetrics = () => scrape(`${edge.url}/metrics`, bearer);

beforeAll(async () => {
  speech = await startSpeechServer();
  runner = await startRunnerProcess(speech.port);
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay` });
}, 60_000);

afterAll(async () => {
  await edge?.close();
  await runner?.stop();
  await speech?.close();
});

describe("/metrics after a real call", () => {
  it("shows the call live and after, on the runner and the edge", async () => {
    const call = await TwilioCall.start(edge);
    // bad input the edge counts (a payload that is not base64), then 3 s of audio in real time
    call.sendMediaWithPayload("%%% not base64 %%%", true);
    await call.play(testAudio(150, 4), { speed: 1 });

    // while the call streams: it is on the runner's engine and active at the edge
    const live = await runnerMetrics();
    const engineCalls = scraped(live, "ozen_runner_engine_calls");
    expect(engineCalls.type).toBe("gauge");
    const engine = engineCalls.samples[0]!.labels["engine"]!;
    expect(engine).toMatch(/^google-v\d$/);
    expect(valueOf(live, "ozen_runner_engine_calls", { engine })).toBe(1);
    expect(valueOf(live, "ozen_runner_active_calls")).toBe(1);
    await waitFor("the call's report at the edge", async () => {
      const m = await edgeMetrics();
      return valueOf(m, "ozen_edge_calls_active") === 1;
    });

    expect(await call.hangUp()).toBe(1000);
    const stats = await waitFor("the call to end at the edge", async () => {
      const s = await edge.callStats(call.callSid);
      return s.state === "ended" && s.events["call.ended"] && s;
    });

    // the runner: transcript latencies, feed cadence, restarts, counters, per engine
    const r = await runnerMetrics();
    const histogram = (name: string, labels: Record<string, string> = {}) => histogramOf(r, name, labels);
    const feed = histogram("ozen_runner_feed_seconds");
    expect(feed.count).toBe(stats.blocksMade);
    expect(histogram("ozen_runner_feed_interval_seconds").count).toBe(stats.blocksMade - 1);
    expect(histogram("ozen_runner_first_partial_latency_seconds", { engine }).count).toBeGreaterThanOrEqual(1);
    const finals = histogram("ozen_runner_final_latency_seconds", { engine });
    expect(finals.count).toBe(stats.events["final"]);
    expect(finals.sum).toBeGreaterThanOrEqual(0);
    expect(scraped(r, "ozen_runner_partial_interval_seconds").type).toBe("histogram");
    expect(valueOf(r, "ozen_runner_engine_calls", { engine })).toBe(0);
    expect(valueOf(r, "ozen_runner_active_calls")).toBe(0);
    // a counter's sample is `<name>_total` to Prometheus, whatever the exposition called it
    expect(valueOf(r, "ozen_runner_blocks_total")).toBe(stats.blocksMade);
    expect(scraped(r, "ozen_runner_blocks").type).toBe("counter");
    expect(
      valueOf(r, "ozen_runner_engine_stream_restarts_total", { role: "engine", reason: "rollover" }),
    ).toBeGreaterThanOrEqual(1);
    expect(valueOf(r, "ozen_runner_engine_rollovers_total")).toBeGreaterThanOrEqual(1);

    // the edge: the call is over, its bad input counted by kind, nothing waiting
    const badKinds = Object.entries(stats.bad).filter(([, n]) => n > 0);
    expect(badKinds).toHaveLength(1);
    const [kind, n] = badKinds[0]!;
    await waitFor("the call's last report at the edge", async () => {
      const m = await edgeMetrics();
      return valueOf(m, "ozen_edge_calls_active") === 0;
    });
    const e = await edgeMetrics();
    expect(valueOf(e, "ozen_edge_calls_total")).toBe(1);
    expect(valueOf(e, "ozen_edge_bad_input_total", { kind })).toBe(n);
    expect(scraped(e, "ozen_edge_bad_input_total").type).toBe("counter");
    expect(valueOf(e, "ozen_edge_relay_reconnects_total")).toBe(0);
    expect(valueOf(e, "ozen_edge_relay_blocks_dropped_total")).toBe(0);
    expect(valueOf(e, "ozen_edge_d1_backlog_utterances")).toBe(0);
    expect(valueOf(e, "ozen_edge_webhook_backlog_events")).toBe(0);
    expect(scraped(e, "ozen_edge_d1_backlog_utterances").type).toBe("gauge");
    expect(scraped(e, "ozen_edge_subscriber_dropped_events_total").type).toBe("counter");
  }, 60_000);

  it("logs on the runner in Cloud Logging's shape: severity and message", () => {
    expect(runner.stderr.length).toBeGreaterThan(0);
    for (const line of runner.stderr) {
      const entry = JSON.parse(line) as { severity?: unknown; message?: unknown };
      expect(["INFO", "WARNING", "ERROR"]).toContain(entry.severity);
      expect(typeof entry.message).toBe("string");
    }
    expect(runner.stderr.some((l) => l.includes('"severity":"INFO"') && l.includes("rolling over"))).toBe(true);
  });

  it("answers the edge's /metrics only with the API token", async () => {
    const res = await fetch(`${edge.url}/metrics`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const wrong = await fetch(`${edge.url}/metrics`, { headers: { Authorization: "Bearer nope" } });
    expect(wrong.status).toBe(401);
    // the refusals are counted, by reason
    await waitFor("the refusals counted", async () => {
      const m = await edgeMetrics();
      return valueOf(m, "ozen_edge_requests_refused_total", { reason: "api_bad_token" }) >= 2;
    });
  });
});
