import fc from "fast-check";
import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { EdgeMetricsBook, formatValue, parseCallMetricsReport, renderExposition } from "../src/index.js";
import type { CallMetricsReport, MetricFamily } from "../src/index.js";
import { parsePrometheusText, sampleValue } from "./prometheus-text.js";

describe("renderExposition", () => {
  it("writes what prom-client writes for the same counters and gauges (escaping included)", async () => {
    const registry = new Registry();
    const c = new Counter({
      name: "x_total",
      help: 'a "help"\\ text\nover lines',
      labelNames: ["kind"],
      registers: [registry],
    });
    c.inc({ kind: 'bad "quote"\\ and\nnewline' }, 3);
    c.inc({ kind: "plain" }, 2);
    const g = new Gauge({ name: "y_level", help: "level", registers: [registry] });
    g.set(1.5);
    const ours = renderExposition([
      {
        name: "x_total",
        help: 'a "help"\\ text\nover lines',
        type: "counter",
        samples: [
          { labels: { kind: 'bad "quote"\\ and\nnewline' }, value: 3 },
          { labels: { kind: "plain" }, value: 2 },
        ],
      },
      { name: "y_level", help: "level", type: "gauge", samples: [{ value: 1.5 }] },
    ]);
    const theirs = await registry.metrics();
    const lines = (t: string) => t.split("\n").filter((l) => l !== "");
    expect(lines(ours)).toEqual(lines(theirs));
  });

  it("is read back by a Prometheus text parser as written, for any labels and values", () => {
    const labelValue = fc.string({ maxLength: 12 });
    const families = fc.uniqueArray(
      fc.record({
        name: fc.stringMatching(/^[a-z_][a-z0-9_]{0,12}$/),
        help: fc.string({ maxLength: 20 }).filter((h) => h.trim() === h),
        type: fc.constantFrom("counter" as const, "gauge" as const),
        samples: fc.uniqueArray(
          fc.record({ labels: fc.record({ kind: labelValue }), value: fc.integer({ min: 0, max: 1e9 }) }),
          { selector: (s) => s.labels.kind, maxLength: 4 },
        ),
      }),
      { selector: (f) => f.name, maxLength: 5 },
    );
    fc.assert(
      fc.property(families, (fs: MetricFamily[]) => {
        const parsed = parsePrometheusText(renderExposition(fs));
        expect(parsed.map((p) => [p.name, p.type])).toEqual(fs.map((f) => [f.name, f.type.toUpperCase()]));
        for (const f of fs) {
          for (const s of f.samples) expect(sampleValue(parsed, f.name, s.labels)).toBe(s.value);
        }
      }),
    );
  });

  it("spells the special values as the format does", () => {
    expect([NaN, Infinity, -Infinity, 0.25].map(formatValue)).toEqual(["NaN", "+Inf", "-Inf", "0.25"]);
  });

  it("refuses names the format does not allow", () => {
    expect(() => renderExposition([{ name: "a-b", help: "", type: "gauge", samples: [] }])).toThrow(/not allowed/);
    expect(() =>
      renderExposition([{ name: "a", help: "", type: "gauge", samples: [{ labels: { "x-y": "1" }, value: 1 }] }]),
    ).toThrow(/label name/);
  });
});

const report = (o: Partial<CallMetricsReport> = {}): CallMetricsReport => ({
  callSid: "CA1",
  active: true,
  badInput: {},
  relayReconnects: 0,
  relayConnectFailures: 0,
  relayBlocksDropped: 0,
  subscriberDrops: {},
  subscribersClosedSlow: 0,
  d1BacklogUtterances: 0,
  webhookBacklogEvents: 0,
  ...o,
});

function values(book: EdgeMetricsBook, nowMs: number) {
  const parsed = parsePrometheusText(renderExposition(book.families(nowMs, { api_bad_token: 2 })));
  return (name: string, labels?: Record<string, string>) => sampleValue(parsed, name, labels);
}

describe("EdgeMetricsBook", () => {
  it("sums the calls' totals and backlogs, and counts the streaming calls", () => {
    const book = new EdgeMetricsBook();
    book.report(report({ callSid: "CA1", badInput: { bad_json: 2 }, relayReconnects: 1, d1BacklogUtterances: 3 }), 0);
    book.report(report({ callSid: "CA2", badInput: { bad_json: 1, bad_base64: 4 }, webhookBacklogEvents: 5 }), 10);
    const v = values(book, 20);
    expect(v("ozen_edge_calls_active")).toBe(2);
    expect(v("ozen_edge_calls_total")).toBe(2);
    expect(v("ozen_edge_bad_input_total", { kind: "bad_json" })).toBe(3);
    expect(v("ozen_edge_bad_input_total", { kind: "bad_base64" })).toBe(4);
    expect(v("ozen_edge_relay_reconnects_total")).toBe(1);
    expect(v("ozen_edge_d1_backlog_utterances")).toBe(3);
    expect(v("ozen_edge_webhook_backlog_events")).toBe(5);
    expect(v("ozen_edge_requests_refused_total", { reason: "api_bad_token" })).toBe(2);
  });

  it("keeps a finished call's counts, and forgets it once nothing of it waits", () => {
    const book = new EdgeMetricsBook();
    book.report(report({ badInput: { bad_json: 2 }, webhookBacklogEvents: 1 }), 0);
    expect(book.report(report({ active: false, badInput: { bad_json: 2 }, webhookBacklogEvents: 1 }), 5)).toBeDefined();
    expect(values(book, 6)("ozen_edge_calls_active")).toBe(0);
    expect(book.report(report({ active: false, badInput: { bad_json: 2 } }), 9)).toBeUndefined();
    expect(book.state.calls.size).toBe(0);
    expect(values(book, 10)("ozen_edge_bad_input_total", { kind: "bad_json" })).toBe(2);
  });

  it("stops counting a silent call as active, and forgets it after the entry TTL", () => {
    const book = new EdgeMetricsBook(undefined, { activeTtlMs: 100, entryTtlMs: 1000 });
    book.report(report({ d1BacklogUtterances: 2 }), 0);
    expect(values(book, 100)("ozen_edge_calls_active")).toBe(1);
    expect(values(book, 101)("ozen_edge_calls_active")).toBe(0);
    expect(values(book, 1000)("ozen_edge_d1_backlog_utterances")).toBe(2);
    expect(book.expire(1001)).toEqual(["CA1"]);
    expect(values(book, 1001)("ozen_edge_d1_backlog_utterances")).toBe(0);
  });

  it("counts each call's highest totals once, whatever reports repeat or come late", () => {
    const call = fc.constantFrom("CA1", "CA2", "CA3");
    const totals = fc.record({ bad: fc.nat(50), reconnects: fc.nat(5) });
    fc.assert(
      fc.property(fc.array(fc.tuple(call, totals), { maxLength: 40 }), (steps) => {
        const book = new EdgeMetricsBook();
        const highest = new Map<string, { bad: number; reconnects: number }>();
        steps.forEach(([sid, t], i) => {
          book.report(report({ callSid: sid, badInput: { bad_json: t.bad }, relayReconnects: t.reconnects }), i);
          const h = highest.get(sid) ?? { bad: 0, reconnects: 0 };
          highest.set(sid, { bad: Math.max(h.bad, t.bad), reconnects: Math.max(h.reconnects, t.reconnects) });
        });
        const sum = (k: "bad" | "reconnects") => [...highest.values()].reduce((n, h) => n + h[k], 0);
        expect(book.state.totals["ozen_edge_bad_input_total\tbad_json"] ?? 0).toBe(sum("bad"));
        expect(book.state.totals["ozen_edge_relay_reconnects_total"] ?? 0).toBe(sum("reconnects"));
      }),
    );
  });

  it("refuses a report that is not one, with what is wrong", () => {
    expect(parseCallMetricsReport(report())).toMatchObject({ ok: true });
    expect(parseCallMetricsReport({ ...report(), relayReconnects: -1 })).toEqual({
      ok: false,
      message: "report.relayReconnects is not a count",
    });
    expect(parseCallMetricsReport({ ...report(), callSid: "../x" })).toMatchObject({ ok: false });
    expect(parseCallMetricsReport("x")).toMatchObject({ ok: false });
    fc.assert(
      fc.property(fc.anything(), (v) => {
        expect(typeof parseCallMetricsReport(v).ok).toBe("boolean");
      }),
    );
  });
});
