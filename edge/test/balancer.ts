/**
 * Many runner instances behind a real front end, for tests and the scale-out benchmark: runner
 * processes (`word-runner.ts`) behind Debian's HAProxy, standing in for Cloud Run's front end
 * (health checks on `/readyz`, redispatch when an instance is gone, optionally a sticky cookie
 * as Cloud Run's session affinity sets one). HAProxy's runtime API (a unix socket) cuts
 * connections for a network blip.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RELAY_SECRET, freePort, sleep, waitFor } from "./helpers.js";

/** Where Debian puts HAProxy, or undefined when it is not installed (the tests skip, saying so). */
export function haproxyPath(): string | undefined {
  for (const p of ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"]) {
    if (spawnSync(p, ["-v"]).status === 0) return p;
  }
  return undefined;
}

/** What a runner process said on stdout (`word-runner.ts`). */
export interface RunnerLine {
  readonly ev: string;
  readonly atMs: number;
  readonly callSid?: string;
  readonly resumeFromSeq?: number;
  readonly [k: string]: unknown;
}

export class RunnerProcess {
  readonly lines: RunnerLine[] = [];
  readonly exited: Promise<number | null>;
  exitedAtMs: number | undefined;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly child: ChildProcess,
  ) {
    let rest = "";
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p) as RunnerLine);
    });
    child.stderr!.resume();
    this.exited = new Promise((resolve) =>
      child.once("exit", (code) => {
        this.exitedAtMs = Date.now();
        resolve(code);
      }),
    );
  }

  /** Calls whose engine session this instance opened, in order (a call more than once when it came back). */
  opened(): RunnerLine[] {
    return this.lines.filter((l) => l.ev === "session_opened");
  }

  closed(): RunnerLine[] {
    return this.lines.filter((l) => l.ev === "session_closed");
  }

  /** Calls whose session is open here now. */
  holding(): Set<string> {
    const open = new Map<string, number>();
    for (const l of this.lines) {
      if (l.ev === "session_opened") open.set(l.callSid!, (open.get(l.callSid!) ?? 0) + 1);
      if (l.ev === "session_closed") open.set(l.callSid!, (open.get(l.callSid!) ?? 0) - 1);
    }
    return new Set([...open].filter(([, n]) => n > 0).map(([sid]) => sid));
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

export interface BalancerOptions {
  readonly runners: number;
  /** OZEN_MAX_CALLS of each runner (unlimited when unset). */
  readonly maxCalls?: number;
  /** The runners' resume grace, ms. */
  readonly resumeGraceMs?: number;
  /** HAProxy's sticky cookie (`OZEN_RUNNER`), as Cloud Run's session affinity. */
  readonly sticky?: boolean;
  /** HAProxy's balance algorithm (default roundrobin). */
  readonly balance?: "roundrobin" | "leastconn";
}

export interface Balancer {
  /** `ws://127.0.0.1:<port>/relay`: the edge's RUNNER_URL. */
  readonly url: string;
  readonly runners: RunnerProcess[];
  /** A command on HAProxy's runtime API; resolves with its answer. */
  admin(command: string): Promise<string>;
  /** The runner holding `callSid`'s session now, if any. */
  holder(callSid: string): RunnerProcess | undefined;
  close(): Promise<void>;
}

const WORD_RUNNER = fileURLToPath(new URL("./word-runner.ts", import.meta.url));

async function startRunnerProcess(name: string, o: BalancerOptions): Promise<RunnerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--import", "tsx", WORD_RUNNER], {
    env: {
      ...process.env,
      PORT: String(port),
      RELAY_SECRET,
      RUNNER_NAME: name,
      ...(o.maxCalls !== undefined ? { OZEN_MAX_CALLS: String(o.maxCalls) } : {}),
      ...(o.resumeGraceMs !== undefined ? { RESUME_GRACE_MS: String(o.resumeGraceMs) } : {}),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const r = new RunnerProcess(name, port, child);
  await waitFor(`runner ${name} listening`, () => r.lines.some((l) => l.ev === "listening"), 30_000);
  return r;
}

function haproxyConfig(o: BalancerOptions, port: number, socket: string, runners: RunnerProcess[]): string {
  const cookie = o.sticky ? "  cookie OZEN_RUNNER insert indirect nocache\n" : "";
  return (
    "global\n" +
    `  stats socket ${socket} mode 600 level admin\n` +
    "defaults\n" +
    "  mode http\n" +
    // a refused connection (a killed instance) is retried at once on another: no 1 s turn-around
    "  timeout connect 200ms\n" +
    "  timeout client 60s\n" +
    "  timeout server 60s\n" +
    "  timeout tunnel 1h\n" +
    "  option redispatch 1\n" +
    "  retries 3\n" +
    // a draining runner refuses an upgrade 503 before the handshake (before its health check says
    // so): the same request goes to another instance at once, not back to the edge
    "  retry-on conn-failure empty-response 503\n" +
    "frontend relay\n" +
    `  bind 127.0.0.1:${port}\n` +
    "  default_backend runners\n" +
    "backend runners\n" +
    `  balance ${o.balance ?? "roundrobin"}\n` +
    // an instance that is full, draining or gone takes no new calls
    "  option httpchk GET /readyz\n" +
    "  http-check expect status 200\n" +
    cookie +
    runners
      .map(
        (r) =>
          `  server ${r.name} 127.0.0.1:${r.port} check inter 100 fall 1 rise 1` +
          (o.sticky ? ` cookie ${r.name}` : "") +
          "\n",
      )
      .join("")
  );
}

/** Starts `o.runners` runner processes and HAProxy before them; `haproxy` from `haproxyPath()`. */
export async function startBalancer(haproxy: string, o: BalancerOptions): Promise<Balancer> {
  const dir = await mkdtemp(join(tmpdir(), "ozen-balancer-"));
  const runners = await Promise.all(Array.from({ length: o.runners }, (_, i) => startRunnerProcess(`r${i + 1}`, o)));
  const port = await freePort();
  const socket = join(dir, "admin.sock");
  const cfg = join(dir, "haproxy.cfg");
  await writeFile(cfg, haproxyConfig(o, port, socket, runners));
  const proxy = spawn(haproxy, ["-f", cfg, "-db"], { stdio: ["ignore", "ignore", "pipe"] });
  let proxyErr = "";
  proxy.stderr!.on("data", (c: Buffer) => (proxyErr += c.toString()));
  const admin = (command: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect(socket);
      let out = "";
      s.on("data", (c) => (out += c.toString()));
      s.on("end", () => resolve(out));
      s.on("error", reject);
      s.write(`${command}\n`);
    });
  await waitFor(
    `HAProxy up with every runner ready (${proxyErr.slice(-200)})`,
    async () => {
      try {
        const stat = await admin("show stat");
        return stat.split("\n").filter((l) => l.startsWith("runners,r") && l.includes(",UP,")).length === o.runners;
      } catch {
        return false;
      }
    },
    20_000,
  );
  return {
    url: `ws://127.0.0.1:${port}/relay`,
    runners,
    admin,
    holder: (callSid) => runners.find((r) => r.exitedAtMs === undefined && r.holding().has(callSid)),
    close: async () => {
      proxy.kill("SIGKILL");
      for (const r of runners) if (r.exitedAtMs === undefined) r.kill("SIGKILL");
      await Promise.race([Promise.all(runners.map((r) => r.exited)), sleep(5000)]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
