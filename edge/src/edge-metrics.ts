/**
 * EdgeMetrics: one Durable Object (named "global") for the edge-wide numbers (adapter):
 * - `POST /incr?name=`: a counter that belongs to no call (rejected signatures and tokens); the
 *   Worker adds to it off the request's path (`waitUntil`). `GET /` answers them as JSON.
 * - `POST /report`: a call's report (`CallMetricsReport`: its totals and backlogs), sent by the
 *   call's object every few seconds off its media path (`call/metrics-report.ts`).
 * - `GET /metrics`: the Prometheus text of both (`EdgeMetricsBook`, `renderExposition`).
 * The book lives in memory, loaded once, and every change is written through to storage (no
 * await between reading and changing it, so concurrent reports cannot interleave).
 */
import {
  EXPOSITION_CONTENT_TYPE,
  EdgeMetricsBook,
  newEdgeMetricsState,
  parseCallMetricsReport,
  renderExposition,
} from "@ozen/shared";
import type { CallEntry } from "@ozen/shared";

const CALL_PREFIX = "call:";

export class EdgeMetrics implements DurableObject {
  private book: EdgeMetricsBook | undefined;
  private counters: Record<string, number> = {};

  constructor(private readonly ctx: DurableObjectState) {
    void ctx.blockConcurrencyWhile(async () => {
      this.counters = (await ctx.storage.get<Record<string, number>>("counters")) ?? {};
      const totals = await ctx.storage.get<{ totals: Record<string, number>; callsStarted: number }>("totals");
      const calls = await ctx.storage.list<CallEntry>({ prefix: CALL_PREFIX });
      const state = { ...newEdgeMetricsState(), ...totals };
      for (const [key, entry] of calls) state.calls.set(key.slice(CALL_PREFIX.length), entry);
      this.book = new EdgeMetricsBook(state);
    });
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const book = this.book!;
    if (request.method === "POST" && url.pathname === "/report") {
      const parsed = parseCallMetricsReport(await request.json().catch(() => undefined));
      if (!parsed.ok) return new Response(parsed.message, { status: 400 });
      const now = Date.now();
      const entry = book.report(parsed.report, now);
      const key = CALL_PREFIX + parsed.report.callSid;
      const { totals, callsStarted } = book.state;
      void this.ctx.storage.put("totals", { totals, callsStarted });
      if (entry) void this.ctx.storage.put(key, entry);
      else void this.ctx.storage.delete(key);
      const gone = book.expire(now);
      if (gone.length > 0) void this.ctx.storage.delete(gone.map((sid) => CALL_PREFIX + sid));
      return new Response(null, { status: 204 });
    }
    if (request.method === "POST") {
      const name = url.searchParams.get("name") ?? "unknown";
      this.counters[name] = (this.counters[name] ?? 0) + 1;
      void this.ctx.storage.put("counters", this.counters);
      return new Response(null, { status: 204 });
    }
    if (url.pathname === "/metrics") {
      return new Response(renderExposition(book.families(Date.now(), this.counters)), {
        headers: { "Content-Type": EXPOSITION_CONTENT_TYPE },
      });
    }
    return Response.json(this.counters);
  }
}
