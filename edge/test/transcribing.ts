/**
 * Test pieces for what a call leaves behind: a runner whose engine "hears" one utterance per
 * fixed stretch of audio (a partial halfway, a final at its end) through the real transcript
 * policy and relay, and a webhook receiver on a real local HTTP server that can fail on cue.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, Server } from "node:http";
import type { Socket } from "node:net";
import type { RelayStart } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";
import { API_TOKEN, bearer } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

const RATE_HZ = 8000;

/** One utterance per `utteranceMs` of call audio: a partial at its middle, a final at its end. */
export class TalkingEngine implements Engine {
  readonly name = "talking";
  constructor(private readonly utteranceMs = 400) {}

  open(_start: RelayStart, listener: EngineListener): EngineSession {
    const per = (this.utteranceMs * RATE_HZ) / 1000;
    let samples = 0;
    let n = 0;
    let partialDone = false;
    const ms = (s: number) => Math.round((s * 1000) / RATE_HZ);
    return {
      feed: (pcm) => {
        samples += pcm.length;
        const start = n * per;
        if (!partialDone && samples - start >= per / 2) {
          partialDone = true;
          listener.interim({ segments: [{ text: `מילה ${n + 1}` }], audioEndMs: ms(start + per / 2) });
        }
        if (samples - start >= per) {
          n++;
          partialDone = false;
          listener.final({ text: `מילה ${n} נאמרה`, audioStartMs: ms(start), audioEndMs: ms(start + per) });
        }
      },
      end: async () => {},
    };
  }
}

export interface TalkingRunner {
  readonly port: number;
  close(): Promise<void>;
}

/** A RelayServer with `TalkingEngine` and the transcript policy, as the runner runs it. */
export async function startTalkingRunner(engine = new TalkingEngine()): Promise<TalkingRunner> {
  const server = new RelayServer({
    engine,
    port: 0,
    log: () => {},
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
  });
  const port = await server.listen();
  return { port, close: () => server.close() };
}

// ---- the records API ----

export async function api(edge: TestEdge, path: string, token: string | null = API_TOKEN): Promise<Response> {
  return fetch(edge.url + path, { headers: token === null ? {} : { Authorization: `Bearer ${token}` } });
}

export async function apiJson<T = any>(edge: TestEdge, path: string): Promise<T> {
  const res = await fetch(edge.url + path, { headers: bearer });
  if (!res.ok) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

// ---- a webhook receiver ----

export interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly atMs: number;
  /** What the receiver answered (0: it never got to answer). */
  readonly status: number;
}

/**
 * A real HTTP server in the test process. `mode`: `ok` answers 200, `fail` answers 500,
 * `refuse()` closes the listening socket (connections are refused), `recover()` listens again
 * on the same port.
 */
export class WebhookReceiver {
  readonly requests: Received[] = [];
  mode: "ok" | "fail" = "ok";
  private server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(public port: number) {
    this.server = this.make();
  }

  static async start(): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(0);
    await r.listen();
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  private make(): Server {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const status = this.mode === "ok" ? 200 : 500;
        this.requests.push({
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
          atMs: Date.now(),
          status,
        });
        res.writeHead(status, { "Content-Type": "text/plain" }).end(status === 200 ? "ok" : "try later");
      });
    });
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", () => {
        const addr = this.server.address();
        if (addr && typeof addr === "object") this.port = addr.port;
        resolve();
      });
    });
  }

  /** Stops listening and drops open connections: the edge's POSTs are refused. */
  async refuse(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Listens again on the same port, answering 200. */
  async recover(): Promise<void> {
    this.mode = "ok";
    if (!this.server.listening) {
      this.server = this.make();
      await this.listen();
    }
  }

  /** The bodies answered 200, parsed, in arrival order. */
  accepted(): any[] {
    return this.requests.filter((r) => r.status === 200).map((r) => JSON.parse(r.body));
  }

  close(): Promise<void> {
    return this.refuse().catch(() => {});
  }
}

/** Checks `X-Ozen-Signature` (`v1=` hex HMAC-SHA256 over `${timestamp}.${body}`) independently. */
export function signatureValid(secret: string, r: Received): boolean {
  const ts = r.headers["x-ozen-timestamp"];
  const sig = r.headers["x-ozen-signature"];
  if (typeof ts !== "string" || typeof sig !== "string" || !sig.startsWith("v1=")) return false;
  const want = createHmac("sha256", secret).update(`${ts}.${r.body}`).digest();
  const got = Buffer.from(sig.slice(3), "hex");
  return got.length === want.length && timingSafeEqual(got, want);
}
