/**
 * EdgeMetrics: one Durable Object for the counters that belong to no call (rejected
 * signatures, bad routes). The Worker adds to it off the request's path (`waitUntil`).
 */
export class EdgeMetrics implements DurableObject {
  constructor(private readonly ctx: DurableObjectState) {}

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST") {
      const name = url.searchParams.get("name") ?? "unknown";
      const counters = (await this.ctx.storage.get<Record<string, number>>("counters")) ?? {};
      counters[name] = (counters[name] ?? 0) + 1;
      await this.ctx.storage.put("counters", counters);
      return new Response(null, { status: 204 });
    }
    return Response.json((await this.ctx.storage.get<Record<string, number>>("counters")) ?? {});
  }
}
