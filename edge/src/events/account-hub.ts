/**
 * AccountHub: one Durable Object per account, the hub of `GET /events`. Every CallSession of the
 * account forwards its delivered events here (`POST /publish`, off the call's path, see
 * `HubForwarder`); the hub fans them out to the account's subscribers with the same flow control
 * as a call's (`subscribers.ts`), knows which calls are active, and keeps the last events for
 * `?sinceMs=` replays.
 */
import { configFor } from "../config.js";
import { Fanout, subscribeSocket } from "./subscribers.js";
import type { HeldEvent } from "./call-events.js";

/** Events of the account the hub keeps for `?sinceMs=`. */
const KEEP_EVENTS = 1000;

/** The hub of an account's `GET /events`. */
export function accountHub(env: { readonly ACCOUNT_HUB: DurableObjectNamespace }, account: string): DurableObjectStub {
  const ns = env.ACCOUNT_HUB;
  return ns.get(ns.idFromName(`account:${account}`));
}

export interface HubBatch {
  readonly callSid: string;
  readonly events: readonly HeldEvent[];
}

function isHeldEvent(v: unknown): v is HeldEvent {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o["text"] === "string" && typeof o["type"] === "string" && typeof o["wallMs"] === "number";
}

export class AccountHub implements DurableObject {
  private readonly fanout: Fanout;
  /** Active calls: their `call.started`, replayed to a new subscriber. */
  private readonly active = new Map<string, HeldEvent>();
  private readonly recent: HeldEvent[] = [];
  private published = 0;
  private badBatches = 0;

  constructor(
    readonly ctx: DurableObjectState,
    env: Record<string, unknown>,
  ) {
    const { subscriptions } = configFor(env);
    this.fanout = new Fanout({ windowEvents: subscriptions.windowEvents, bufferEvents: subscriptions.bufferEvents });
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/publish") return this.publish(await request.json());
    if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") return this.subscribe(url);
    return Response.json({
      activeCalls: [...this.active.keys()],
      published: this.published,
      badBatches: this.badBatches,
      subscribers: { ...this.fanout.totals, list: this.fanout.list() },
    });
  }

  private publish(body: unknown): Response {
    const batch = body as Partial<HubBatch> | null;
    if (!batch || typeof batch.callSid !== "string" || !Array.isArray(batch.events)) {
      this.badBatches++;
      return new Response("expected {callSid, events: [...]}", { status: 400 });
    }
    for (const e of batch.events) {
      if (!isHeldEvent(e)) {
        this.badBatches++;
        continue;
      }
      this.published++;
      if (e.type === "call.started") this.active.set(batch.callSid, e);
      else if (e.type === "call.ended") this.active.delete(batch.callSid);
      this.recent.push(e);
      if (this.recent.length > KEEP_EVENTS) this.recent.shift();
      this.fanout.publish(e);
    }
    return new Response(null, { status: 204 });
  }

  private subscribe(url: URL): Response {
    const raw = url.searchParams.get("sinceMs");
    const sinceMs = raw === null ? undefined : Number(raw);
    if (sinceMs !== undefined && !Number.isFinite(sinceMs)) {
      return new Response(`sinceMs is ${JSON.stringify(raw)}, expected a wall time in ms`, { status: 400 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    server.accept();
    const s = subscribeSocket(this.fanout, server);
    // a new subscriber learns the active calls; with sinceMs, everything the hub kept after it
    s.replay(sinceMs === undefined ? [...this.active.values()] : this.recent.filter((e) => e.wallMs > sinceMs));
    return new Response(null, { status: 101, webSocket: client });
  }
}
