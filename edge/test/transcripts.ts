/**
 * Test pieces for transcript delivery: a deterministic engine whose words come from the audio
 * time of each block (so a gap or a repeat in what it heard shows in the text), a real runner
 * that sends its results through the transcript policy, and an agent subscriber on a real
 * WebSocket that acknowledges as fast or as slowly as a test wants.
 */
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import type { RelayStart } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";
import { API_TOKEN, RELAY_SECRET } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

/** The word the engine says for the block starting at `blockIndex` (100 ms blocks). */
export function wordOf(blockIndex: number): string {
  return `מילה${blockIndex}`;
}

/**
 * Says one word per block it hears (`wordOf(startSample / blockSamples)`), an interim after each
 * block and a final every `blocksPerUtterance` blocks of call audio; commits audio at finals, so a
 * new runner is replayed everything after the last final.
 */
export class WordEngine implements Engine {
  readonly name = "words";
  readonly finals: { callSid: string; text: string }[] = [];

  constructor(private readonly blocksPerUtterance = 5) {}

  open(start: RelayStart, listener: EngineListener): EngineSession {
    const blockSamples = (start.sampleRateHz * start.blockMs) / 1000;
    const msOf = (sample: number) => (sample * 1000) / start.sampleRateHz;
    let words: string[] = [];
    let uttStart = -1;
    let committed = start.resumeFromSeq * blockSamples;
    let heardTo = committed;
    const finish = () => {
      if (words.length === 0) return;
      const text = words.join(" ");
      this.finals.push({ callSid: start.callSid, text });
      committed = heardTo;
      words = [];
      listener.final({ text, audioStartMs: msOf(uttStart), audioEndMs: msOf(heardTo) });
    };
    return {
      feed: (pcm, startSample) => {
        const index = Math.floor(startSample / blockSamples);
        if (words.length === 0) uttStart = startSample;
        words.push(wordOf(index));
        heardTo = startSample + pcm.length;
        if ((index + 1) % this.blocksPerUtterance === 0) finish();
        else listener.interim({ segments: [{ text: words.join(" ") }], audioEndMs: msOf(heardTo) });
      },
      get committedSample() {
        return committed;
      },
      end: async () => finish(),
    };
  }
}

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
