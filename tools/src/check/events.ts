/**
 * A call's transcript events as they happen, read from the edge's call API: the WebSocket at
 * `GET /calls/{CallSid}/events?since=0` when the edge offers one (each message an event,
 * acknowledged with `{"ack":N}`, N the events read so far), otherwise the JSON window at the same path (`{"events":[...]}`) polled
 * every `pollMs`. Each event is stamped with this process's clock when it arrived.
 */
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { parseTranscriptEvent } from "@ozen/shared";
import type { TranscriptEvent } from "@ozen/shared";

export interface ArrivedEvent {
  readonly event: TranscriptEvent;
  /** performance.now() when it reached this process, ms. */
  readonly receivedAtMs: number;
}

export interface EventFeed {
  /** `websocket` or `polling every N ms`. */
  readonly via: string;
  readonly events: ArrivedEvent[];
  /** The last error reading events, if any. */
  readonly error: string | undefined;
  /** Resolves when `call.ended` has arrived or after `timeoutMs`. */
  ended(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface FeedOptions {
  readonly edgeUrl: string;
  readonly callSid: string;
  readonly apiToken: string;
  readonly pollMs?: number;
  /** `auto`: the WebSocket when the edge offers one, else polling; `poll`: polling only. */
  readonly via?: "auto" | "poll";
}

/** Event objects in one message: the event itself, `{event}`, `{events: [...]}`, or an array. */
function eventsIn(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value !== "object" || value === null) return [];
  const o = value as Record<string, unknown>;
  if (Array.isArray(o["events"])) return o["events"];
  if (typeof o["event"] === "object" && o["event"] !== null) return [o["event"]];
  return typeof o["type"] === "string" ? [o] : [];
}

/** An event's identity, for de-duplicating the overlapping windows a poll returns: its number in the call when the edge gives one. */
function keyOf(raw: unknown, e: TranscriptEvent): string {
  const n = (raw as { n?: unknown }).n;
  if (typeof n === "number") return `n${n}`;
  const u = "utteranceId" in e ? e.utteranceId : "";
  const seq = "seq" in e ? e.seq : "";
  return `${e.type}|${e.wallMs}|${u}|${seq}`;
}

class Feed implements EventFeed {
  readonly events: ArrivedEvent[] = [];
  error: string | undefined;
  private readonly seen = new Set<string>();
  private waiters: (() => void)[] = [];

  constructor(readonly via: string) {}

  take(value: unknown, at: number): number {
    let n = 0;
    for (const raw of eventsIn(value)) {
      n++;
      const r = parseTranscriptEvent(raw);
      if (!r.ok) {
        this.error = `an event was refused: ${r.message}`;
        continue;
      }
      const key = keyOf(raw, r.event);
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.events.push({ event: r.event, receivedAtMs: at });
      if (r.event.type === "call.ended") for (const w of this.waiters.splice(0)) w();
    }
    return n;
  }

  get hasEnded(): boolean {
    return this.events.some((e) => e.event.type === "call.ended");
  }

  ended(timeoutMs: number): Promise<boolean> {
    if (this.hasEnded) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.hasEnded), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  stop: () => Promise<void> = () => Promise.resolve();

  close(): Promise<void> {
    return this.stop();
  }
}

function tryWebSocket(o: FeedOptions, timeoutMs: number): Promise<Feed | undefined> {
  // since=0: whatever the call already holds, then every event as it comes
  const url = `${o.edgeUrl.replace(/^http/, "ws")}/calls/${encodeURIComponent(o.callSid)}/events?since=0`;
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${o.apiToken}` }, perMessageDeflate: false });
  const feed = new Feed("websocket");
  let received = 0;
  ws.on("message", (data) => {
    const at = performance.now();
    try {
      received += feed.take(JSON.parse(data.toString()), at);
    } catch {
      feed.error = "the events socket sent a message that is not JSON";
    }
    ws.send(JSON.stringify({ ack: received }));
  });
  feed.stop = () =>
    new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.once("close", () => resolve());
      ws.close(1000, "check done");
      setTimeout(() => (ws.terminate(), resolve()), 1000);
    });
  return new Promise((resolve) => {
    const timer = setTimeout(() => (ws.terminate(), resolve(undefined)), timeoutMs);
    ws.once("open", () => (clearTimeout(timer), resolve(feed)));
    // no upgrade (the JSON-only API answers 426 or 200), or nothing listening: fall back to polling
    ws.once("unexpected-response", () => (clearTimeout(timer), ws.terminate(), resolve(undefined)));
    ws.once("error", () => (clearTimeout(timer), resolve(undefined)));
  });
}

function poll(o: FeedOptions): Feed {
  const pollMs = o.pollMs ?? 50;
  const feed = new Feed(`polling every ${pollMs} ms (arrivals up to ${pollMs} ms late)`);
  const url = `${o.edgeUrl}/calls/${encodeURIComponent(o.callSid)}/events`;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(url, { headers: { Authorization: `Bearer ${o.apiToken}` } });
        const at = performance.now();
        if (res.ok) feed.take(await res.json(), at);
        else feed.error = `GET ${new URL(url).pathname} answered ${res.status}: ${(await res.text()).slice(0, 120)}`;
      } catch (e) {
        feed.error = `GET ${new URL(url).pathname} failed: ${String(e)}`;
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  })();
  feed.stop = async () => {
    stopped = true;
    await loop;
  };
  return feed;
}

/** Follows the call's events: over the WebSocket when the edge has one (and `via` allows), else by polling. */
export async function followEvents(o: FeedOptions): Promise<EventFeed> {
  return (o.via === "poll" ? undefined : await tryWebSocket(o, 3000)) ?? poll(o);
}
