import { describe, expect, it } from "vitest";
import type { TranscriptEvent } from "@ozen/shared";
import { Metrics } from "../src/metrics.js";

const base = { v: 1 as const, callSid: "CA1" };

async function values(m: Metrics, name: string): Promise<{ labels: Record<string, unknown>; value: number }[]> {
  const all = await m.registry.getMetricsAsJSON();
  return (all.find((x) => x.name === name)?.values ?? []) as { labels: Record<string, unknown>; value: number }[];
}

describe("runner metrics from a call's events", () => {
  it("counts the call on its engine, moves it on failover, and lets it go at the end", async () => {
    const m = new Metrics();
    const calls = async () =>
      Object.fromEntries((await values(m, "ozen_runner_engine_calls")).map((v) => [v.labels["engine"], v.value]));
    m.observeEvent({ ...base, type: "call.started", engine: "google-v2", wallMs: 0 });
    expect(await calls()).toEqual({ "google-v2": 1 });
    m.observeEvent({ ...base, type: "engine.switched", from: "google-v2", to: "whisper", reason: "x", wallMs: 1 });
    expect(await calls()).toEqual({ "google-v2": 0, whisper: 1 });
    m.observeEvent({ ...base, type: "call.ended", reason: "caller_hung_up", wallMs: 2 });
    expect(await calls()).toEqual({ "google-v2": 0, whisper: 0 });
  });

  it("times an utterance's first partial, the interval to its next partials, and its final", async () => {
    const m = new Metrics();
    const partial = (seq: number, wallMs: number, utteranceId = "CA1:u1"): TranscriptEvent => ({
      ...base,
      type: "partial",
      utteranceId,
      seq,
      text: "a",
      stable: "",
      volatile: "a",
      revised: false,
      audioEndMs: 100,
      wallMs,
      latencyMs: 300,
    });
    m.observeEvent({ ...base, type: "call.started", engine: "google-v2", wallMs: 0 });
    m.observeEvent(partial(0, 1000));
    m.observeEvent(partial(1, 1250));
    m.observeEvent(partial(2, 1700));
    m.observeEvent(partial(0, 9000, "CA1:u2")); // a new utterance: no interval across utterances
    m.observeEvent({
      ...base,
      type: "final",
      utteranceId: "CA1:u2",
      text: "a.",
      rawText: "a",
      stable: true,
      engine: "google-v2",
      audioStartMs: 0,
      audioEndMs: 100,
      wallMs: 9100,
      latencyMs: 700,
    });
    const stat = async (name: string, what: "count" | "sum") =>
      (await values(m, name)).find((v) => (v as { metricName?: string }).metricName === `${name}_${what}`)?.value;
    expect(await stat("ozen_runner_first_partial_latency_seconds", "count")).toBe(2);
    expect(await stat("ozen_runner_first_partial_latency_seconds", "sum")).toBeCloseTo(0.6);
    expect(await stat("ozen_runner_partial_interval_seconds", "count")).toBe(2);
    expect(await stat("ozen_runner_partial_interval_seconds", "sum")).toBeCloseTo(0.7);
    expect(await stat("ozen_runner_final_latency_seconds", "sum")).toBeCloseTo(0.7);
  });

  it("reads stream restarts out of the engine's counters, by role and reason", async () => {
    const m = new Metrics();
    const text = await m.render({ enginePrimaryRollovers: 3, enginePrimaryReconnects: 1, engineFallbackRestarts: 2 });
    expect(text).toContain('ozen_runner_engine_stream_restarts_total{role="primary",reason="rollover"} 3');
    expect(text).toContain('ozen_runner_engine_stream_restarts_total{role="primary",reason="reconnect"} 1');
    expect(text).toContain('ozen_runner_engine_stream_restarts_total{role="fallback",reason="worker_restart"} 2');
    expect(text).toMatch(/^ozen_runner_engine_primary_rollovers 3$/m);
  });
});
