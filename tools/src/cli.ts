/**
 * ozen: the project's command line.
 *   ozen call URL --audio FILE [--calls N] ...   place simulated Twilio calls against an edge
 *   ozen bench ingest --calls N --seconds S --json FILE
 *   ozen bench fanout [--subscribers N] [--rates R1,R2,..] [--seconds S] --json FILE
 *   ozen bench fairness [--seconds S] [--speed X] [--capacity C] [--buffer-ms MS] --json FILE
 *   ozen bench stt --engine whisper --model M --set DIR [--set DIR ...] --json FILE [--files N]
 *   ozen models [--json]                         the whisper models on this machine
 *   ozen demo                                    edge + runner locally, one call with real speech
 *   ozen check URL [--json FILE] [--token T]      the playbook's GO checks against a running edge
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { percentile } from "@ozen/shared";
import { loadAudio8k } from "./audio.js";
import { fail, positive } from "./args.js";
import { placeCalls } from "./simulator.js";

async function call(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      audio: { type: "string" },
      calls: { type: "string" },
      seconds: { type: "string" },
      speed: { type: "string" },
      "auth-token": { type: "string" },
      "public-url": { type: "string" },
      naive: { type: "boolean" },
      "warmup-ms": { type: "string" },
      json: { type: "string" },
      phases: { type: "boolean" },
    },
  });
  const url = positionals[0];
  if (!url || !/^https?:\/\//.test(url)) fail("the edge URL (http://host:port) is required");
  if (!values.audio) fail("--audio FILE is required");
  const authToken = values["auth-token"] ?? process.env["TWILIO_AUTH_TOKEN"];
  if (!authToken) fail("--auth-token or TWILIO_AUTH_TOKEN is required to sign like Twilio");
  const audio = loadAudio8k(values.audio);
  const calls = positive("calls", values.calls, 1);
  const verbose = calls === 1 && !values.json;
  const t0 = performance.now();
  const out = await placeCalls({
    edgeUrl: url.replace(/\/$/, ""),
    publicUrl: values["public-url"],
    authToken,
    audio: audio.mulaw,
    calls,
    seconds: values.seconds ? positive("seconds", values.seconds, 0) : undefined,
    speed: positive("speed", values.speed, 1),
    naive: values.naive ?? false,
    warmupMs: positive("warmup-ms", values["warmup-ms"], 0, true),
    onMessage: verbose
      ? (m, at) => {
          const ev = m as { event?: string; mark?: { name?: string } };
          if (ev.event === "mark" && ev.mark?.name?.startsWith("ozen-ack:")) return;
          console.log(`${(at - t0).toFixed(1).padStart(8)} ms  ${JSON.stringify(m).slice(0, 160)}`);
        }
      : undefined,
    onPhase: values.phases ? (phase, frames) => console.log(`PHASE ${phase} ${frames}`) : undefined,
  });
  const acks = out.results.flatMap((r) => r.ackMs);
  const greetings = out.results.map((r) => r.greetingMs).filter((x): x is number => x !== null);
  const summary = {
    calls,
    calls_completed: out.results.length,
    errors: out.errors,
    frames_sent: out.framesSent,
    acks_received: out.results.reduce((n, r) => n + r.acksReceived, 0),
    ack_ms_p50: percentile(acks, 0.5),
    ack_ms_p99: percentile(acks, 0.99),
    greeting_ms_p50: percentile(greetings, 0.5),
    greeting_ms_max: greetings.length ? Math.max(...greetings) : null,
    received: out.results.reduce<Record<string, number>>((acc, r) => {
      for (const [k, v] of Object.entries(r.received)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    call_sids: out.results.map((r) => r.callSid),
  };
  if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2) + "\n");
  else console.log(JSON.stringify({ ...summary, call_sids: undefined }, null, 2));
  if (out.errors.length) process.exitCode = 1;
}

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case "call":
    await call(rest);
    break;
  case "bench": {
    const [what, ...args] = rest;
    if (what === "ingest") {
      const { benchIngest } = await import("./bench/ingest.js");
      await benchIngest(args);
    } else if (what === "runner") {
      const { benchRunner } = await import("./bench/runner.js");
      await benchRunner(args);
    } else if (what === "records") {
      const { benchRecords } = await import("./bench/records.js");
      await benchRecords(args);
    } else if (what === "fanout") {
      const { benchFanout } = await import("./bench/fanout.js");
      await benchFanout(args);
    } else if (what === "fairness") {
      const { benchFairness } = await import("./bench/fairness.js");
      await benchFairness(args);
    } else if (what === "stt") {
      const { benchStt } = await import("./bench/stt.js");
      await benchStt(args);
      // every process and server it started is closed; a client socket left in keep-alive must not hold the exit
      process.exit(process.exitCode ?? 0);
    } else {
      fail(`unknown benchmark ${JSON.stringify(what)}; available: ingest, runner, records, fanout, fairness, stt`);
    }
    break;
  }
  case "check": {
    const { check } = await import("./check.js");
    await check(rest);
    break;
  }
  case "models": {
    const { models } = await import("./models.js");
    models(rest);
    break;
  }
  case "demo": {
    const { demo } = await import("./demo.js");
    await demo(rest);
    break;
  }
  default:
    fail(command ? `unknown command ${JSON.stringify(command)}` : "no command");
}
