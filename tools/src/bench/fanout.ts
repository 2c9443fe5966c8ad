/**
 * ozen bench fanout: one call's Durable Object fanning its events out to N agent subscribers
 * (`GET /calls/{CallSid}/events`), on real workerd (Miniflare), against 1 subscriber in the same
 * run. A stand-in runner (a real RelayServer with the null engine) sends transcript events
 * straight over the call's relay socket, stamped with the wall time they leave it (`wallMs`,
 * sub-ms); the subscribers run in this process, acknowledge every event as they read it and
 * note when each arrived.
 *
 * Each step sends events at a fixed rate (`--rates`, events/s) for `--seconds`:
 * - added_latency_ms = subscriber receipt - wallMs (runner result -> subscriber: relay, Durable
 *   Object, fan-out, socket), p50/p99 over every receipt of the step;
 * - dropped: events the edge dropped for a subscriber whose buffer was full (from the call's
 *   stats), so a rate the subscribers cannot keep up with shows as drops, not as a lower rate.
 * fanout_events_per_s: the highest step rate delivered complete with no drop x subscribers.
 * `--stream account`: the subscribers are on `GET /events` instead (the call's object forwards
 * to the account's hub, which fans out).
 * Every event is also forwarded to the account hub (`GET /events`), as in production.
 */
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { encodeControl, percentile } from "@ozen/shared";
import { nullEngine } from "@ozen/stt-runner";
import type { LocalEdge } from "@ozen/edge/local";
import { fail, parseCommand, positive } from "../args.js";
import { BENCH_FANOUT } from "../commands.js";
import { startLocalStack } from "../local-stack.js";
import { TwilioStreamScript, newIdentity, openStream } from "../simulator.js";

const API = "bench-api-token";

const wallNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for `cond`, polling; false after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

/** A subscriber that acknowledges what it read once per event-loop turn and keeps each partial's latency. */
class BenchSubscriber {
  readonly latencies: number[] = [];
  received = 0;
  private ackScheduled = false;

  private constructor(readonly ws: WebSocket) {
    ws.on("error", () => {}); // a socket reset at teardown is not a result
    ws.on("message", (data) => {
      const at = wallNow();
      const e = JSON.parse(data.toString()) as { type: string; wallMs: number };
      this.received++;
      if (e.type === "partial") this.latencies.push(at - e.wallMs);
      // acknowledge once per turn of the event loop, as an agent reading a batch would
      if (!this.ackScheduled) {
        this.ackScheduled = true;
        setImmediate(() => {
          this.ackScheduled = false;
          if (ws.readyState === WebSocket.OPEN) ws.send(`{"ack":${this.received}}`);
        });
      }
    });
  }

  static async open(edge: LocalEdge, path: string): Promise<BenchSubscriber> {
    const ws = new WebSocket(`${edge.url.replace(/^http/, "ws")}${path}`, {
      headers: { Authorization: `Bearer ${API}` },
      perMessageDeflate: false,
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new BenchSubscriber(ws);
  }
}

interface Step {
  rate_per_s: number;
  events_sent: number;
  deliveries: number;
  dropped: number;
  complete: boolean;
  added_latency_ms_p50: number | null;
  added_latency_ms_p99: number | null;
}

interface FanoutRun {
  subscribers: number;
  steps: Step[];
  /** The highest step rate delivered complete with no drop, times the subscribers. */
  fanout_events_per_s: number;
}

async function run(
  edge: LocalEdge,
  runnerSends: Map<string, (text: string) => void>,
  n: number,
  o: { rates: number[]; seconds: number; stream: "call" | "account" },
): Promise<FanoutRun> {
  const identity = newIdentity();
  const { callSid } = identity;
  const path = o.stream === "call" ? `/calls/${callSid}/events` : "/events";
  const subs = await Promise.all(Array.from({ length: n }, () => BenchSubscriber.open(edge, path)));
  const twilio = await openStream({
    edgeUrl: edge.url,
    authToken: "",
    streamUrl: `${edge.url.replace(/^http/, "ws")}/twilio/stream/${callSid}`,
    signature: "none",
  });
  twilio.on("error", () => {});
  const script = new TwilioStreamScript(identity, {});
  twilio.send(script.connected());
  twilio.send(script.start());
  if (!(await until(() => runnerSends.has(callSid), 10_000))) throw new Error("the edge never reached the runner");
  const send = runnerSends.get(callSid)!;
  let utterance = 0;
  const emit = () => {
    utterance++;
    const text = `מילה${utterance}`;
    send(
      encodeControl({
        type: "event",
        event: {
          v: 1,
          type: "partial",
          callSid,
          wallMs: wallNow(),
          utteranceId: `${callSid}:u${utterance}`,
          seq: 0,
          text,
          stable: "",
          volatile: text,
          revised: false,
          audioEndMs: utterance * 10,
        },
      }),
    );
  };
  const received = () => subs.reduce((sum, x) => sum + x.received, 0);
  const droppedNow = async () => {
    // the call's stats, or the account hub's (GET /events without an upgrade)
    const statsPath = o.stream === "call" ? `/calls/${callSid}/stats` : "/events";
    const res = await fetch(`${edge.url}${statsPath}`, { headers: { Authorization: `Bearer ${API}` } });
    const stats = (await res.json()) as {
      eventStream?: { subscribers: { dropped: Record<string, number> } };
      subscribers?: { dropped: Record<string, number> };
    };
    const dropped = (o.stream === "call" ? stats.eventStream?.subscribers : stats.subscribers)?.dropped ?? {};
    return Object.values(dropped).reduce((a, b) => a + b, 0);
  };
  const round = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);

  const steps: Step[] = [];
  for (const rate of o.rates) {
    for (const sub of subs) sub.latencies.length = 0;
    const before = received();
    const droppedBefore = await droppedNow();
    const events = Math.round(rate * o.seconds);
    const t0 = performance.now();
    for (let k = 0; k < events; k++) {
      const wait = t0 + (k * 1000) / rate - performance.now();
      if (wait >= 1) await sleep(wait);
      emit();
    }
    const complete = await until(() => received() - before >= events * n, 5000);
    if (!complete) await sleep(500); // what the edge dropped never comes; let the rest arrive
    const dropped = (await droppedNow()) - droppedBefore;
    const latencies = subs.flatMap((x) => x.latencies);
    steps.push({
      rate_per_s: rate,
      events_sent: events,
      deliveries: received() - before,
      dropped,
      complete,
      added_latency_ms_p50: round(percentile(latencies, 0.5)),
      added_latency_ms_p99: round(percentile(latencies, 0.99)),
    });
    if (!complete || dropped > 0) break; // past its limit: a faster step only measures the backlog
  }
  twilio.send(script.stop());
  twilio.close();
  for (const sub of subs) sub.ws.close();
  const best = Math.max(0, ...steps.filter((x) => x.complete && x.dropped === 0).map((x) => x.rate_per_s));
  return { subscribers: n, steps, fanout_events_per_s: best * n };
}

export async function benchFanout(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_FANOUT, argv);
  const subscribers = positive("subscribers", values.subscribers, 10);
  const rates = (values.rates ?? "100,200,500,1000,2000").split(",").map((r) => positive("rates", r, 0));
  const stream = values.stream ?? "call";
  if (stream !== "call" && stream !== "account")
    fail(`--stream is ${JSON.stringify(stream)}, expected call or account`);
  const o = { rates, seconds: positive("seconds", values.seconds, 3), stream: stream as "call" | "account" };
  const runnerSends = new Map<string, (text: string) => void>();
  const stack = await startLocalStack({
    runner: {
      engine: nullEngine,
      listenerFor: (start, send) => {
        runnerSends.set(start.callSid, send);
        return { interim() {}, final() {}, failed() {} };
      },
    },
    apiToken: API,
    // signatures off: nothing is signed against it, the stream is opened by path
    vars: { TWILIO_SIGNATURE: "off", GREETING: "none" },
  });
  const edge = stack.edge;
  try {
    const result: Record<string, unknown> = {
      note:
        o.stream === "call"
          ? "GET /calls/{CallSid}/events: one call's Durable Object on workerd fans out; runner stand-in and subscribers in this process (same clock)"
          : "GET /events: the call's Durable Object forwards to the account's hub, which fans out; runner stand-in and subscribers in this process (same clock)",
    };
    for (const n of subscribers === 1 ? [1] : [1, subscribers]) {
      process.stderr.write(`bench fanout: ${n} subscriber(s), ${rates.join(", ")} events/s, ${o.seconds} s each ...\n`);
      result[n === 1 ? "baseline_1_subscriber" : `subscribers_${n}`] = await run(edge, runnerSends, n, o);
    }
    const text = JSON.stringify(result, null, 2);
    if (values.json) writeFileSync(values.json, text + "\n");
    console.log(text);
  } finally {
    await stack.close();
  }
}
