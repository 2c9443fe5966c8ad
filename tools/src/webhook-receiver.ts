/**
 * A webhook receiver on a real local HTTP server that can fail on cue (500s, refused connections)
 * and recover, and an independent check of ozen's webhook signature (node:crypto).
 */
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, Server } from "node:http";
import type { Socket } from "node:net";
import { equalSecrets } from "@ozen/shared";

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

  close(): Promise<void> {
    return this.refuse().catch(() => {});
  }
}

/** Checks `X-Ozen-Signature` (`v1=` hex HMAC-SHA256 over `${timestamp}.${body}`) independently. */
export function signatureValid(secret: string, r: Received): boolean {
  const ts = r.headers["x-ozen-timestamp"];
  const sig = r.headers["x-ozen-signature"];
  if (typeof ts !== "string" || typeof sig !== "string" || !sig.startsWith("v1=")) return false;
  const want = createHmac("sha256", secret).update(`${ts}.${r.body}`).digest("hex");
  return equalSecrets(sig.slice(3).toLowerCase(), want);
}
