/**
 * Test pieces for transcript delivery: a deterministic engine whose words come from the audio
 * time of each block (so a gap or a repeat in what it heard shows in the text), a real runner
 * that sends its results through the transcript policy, and an agent subscriber on a real
 * WebSocket that acknowledges as fast or as slowly as a test wants.
 */
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine } from "@ozen/stt-runner";
import { API_TOKEN, RELAY_SECRET } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

export { WordEngine, wordOf } from "./word-engine.js";

/** A real runner whose engine results go through the transcript policy to the edge. */
export async function startTranscribingRunner(
  engine: Engine,
  port = 0,
): Promise<{ server: RelayServer; port: number; close(): Promise<void> }> {
  const server = new RelayServer({
    engine,
    port,
    relaySecret: RELAY_SECRET,
    log: () => {},
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
  });
  const bound = await server.listen();
  return { server, port: bound, close: () => server.close() };
}

export interface ReceivedEvent {
  readonly e: Record<string, any>;
  /** performance.timeOrigin + performance.now() when it arrived: comparable with `wallMs`. */
  readonly atMs: number;
}

/**
 * An agent on `/calls/{sid}/events` or `/events`. `ack: "auto"` acknowledges every event as it
 * arrives; `"manual"` only when the test calls `ackAll()`.
 */
export class Subscriber {
  readonly events: ReceivedEvent[] = [];
  closeCode: number | undefined;
  closeReason = "";
  readonly closed: Promise<number>;

  private constructor(
    readonly ws: WebSocket,
    private readonly ack: "auto" | "manual",
  ) {
    ws.on("message", (data) => {
      this.events.push({ e: JSON.parse(data.toString()) as Record<string, any>, atMs: wallNow() });
      if (this.ack === "auto") this.ackAll();
    });
    this.closed = new Promise((resolve) =>
      ws.once("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      }),
    );
  }

  static connect(
    edge: TestEdge,
    path: string,
    o: { ack?: "auto" | "manual"; headers?: Record<string, string> } = {},
  ): Promise<Subscriber> {
    const ws = new WebSocket(edge.url.replace(/^http/, "ws") + path, {
      headers: o.headers ?? { Authorization: `Bearer ${API_TOKEN}` },
    });
    const s = new Subscriber(ws, o.ack ?? "auto");
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(s));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }

  ackAll(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ ack: this.events.length }));
  }

  of(type: string, callSid?: string): Record<string, any>[] {
    return this.events.map((r) => r.e).filter((e) => e.type === type && (!callSid || e.callSid === callSid));
  }

  close(): void {
    this.ws.close();
  }
}

/** Wall-clock ms with sub-ms resolution. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The status an upgrade to `path` is refused with (it must be refused). */
export function refusedUpgrade(edge: TestEdge, path: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(edge.url.replace(/^http/, "ws") + path, { headers });
  ws.on("error", () => {});
  return new Promise((resolve, reject) => {
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      ws.terminate();
      reject(new Error(`upgrade to ${path} was accepted`));
    });
  });
}
