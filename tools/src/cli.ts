/**
 * ozen: the project's command line. `ozen --help` lists the commands, `ozen COMMAND --help` shows
 * one's options (their tables are in commands.ts); each command module is loaded only when run.
 */
import { writeFileSync } from "node:fs";
import { decodeMulaw, percentile, wavBytes } from "@ozen/shared";
import { loadAudio8k } from "./audio.js";
import { commandHelp, fail, parseCommand, positive, usageError } from "./args.js";
import { BENCHMARKS, CALL, COMMANDS, benchHelp, topHelp } from "./commands.js";
import { newIdentity, placeCall, placeCalls } from "./simulator.js";
import type { ManyCallsOptions } from "./simulator.js";

async function call(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(CALL, argv);
  const url = positionals[0];
  if (!url || !/^https?:\/\//.test(url)) fail("the edge URL (http://host:port) is required");
  if (!values.audio) fail("--audio FILE is required");
  const authToken = values["auth-token"] ?? process.env["TWILIO_AUTH_TOKEN"];
  if (!authToken) fail("--auth-token or TWILIO_AUTH_TOKEN is required to sign like Twilio");
  const audio = loadAudio8k(values.audio);
  const calls = positive("calls", values.calls, 1);
  const verbose = calls === 1 && !values.json;
  const callSid = values["call-sid"];
  if (callSid !== undefined && (calls !== 1 || !/^CA[0-9a-f]{32}$/.test(callSid)))
    fail("--call-sid takes one call's CallSid, CA and 32 hex digits (with --calls 1)");
  const t0 = performance.now();
  const options: ManyCallsOptions = {
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
    keepHeard: values.heard !== undefined,
  };
  const out = callSid
    ? await placeCall({ ...options, onPhase: undefined, identity: { ...newIdentity(), callSid } }).then(
        (r) => ({ results: [r], errors: [] as string[], framesSent: r.framesSent }),
        (e: unknown) => ({ results: [], errors: [String(e)], framesSent: 0 }),
      )
    : await placeCalls(options);
  const heard = out.results[0]?.heard;
  if (values.heard && heard) writeFileSync(values.heard, wavBytes(decodeMulaw(heard), 8000));
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

/** What runs each command, by its name in commands.ts; a command's modules load only when it runs. */
const RUN: Readonly<Record<string, (argv: string[]) => Promise<void>>> = {
  call,
  demo: async (argv) => (await import("./demo.js")).demo(argv),
  check: async (argv) => (await import("./check.js")).check(argv),
  models: async (argv) => (await import("./models.js")).models(argv),
  "models fetch": async (argv) => (await import("./models.js")).fetchModel(argv),
  stack: async (argv) => (await import("./stack.js")).stack(argv),
  "bench ingest": async (argv) => (await import("./bench/ingest.js")).benchIngest(argv),
  "bench runner": async (argv) => (await import("./bench/runner.js")).benchRunner(argv),
  "bench records": async (argv) => (await import("./bench/records.js")).benchRecords(argv),
  "bench fanout": async (argv) => (await import("./bench/fanout.js")).benchFanout(argv),
  "bench vad": async (argv) => (await import("./bench/vad.js")).benchVad(argv),
  "bench fairness": async (argv) => (await import("./bench/fairness.js")).benchFairness(argv),
  "bench soak": async (argv) => (await import("./bench/soak.js")).benchSoak(argv),
  "bench turn": async (argv) => {
    await (await import("./bench/turn.js")).benchTurn(argv);
    // the stacks are closed; a keep-alive socket of fetch must not hold the exit
    process.exit(process.exitCode ?? 0);
  },
  "bench stt": async (argv) => {
    await (await import("./bench/stt.js")).benchStt(argv);
    // every process and server it started is closed; a client socket left in keep-alive must not hold the exit
    process.exit(process.exitCode ?? 0);
  },
};

/** `ozen help [COMMAND]`: the top help, the benchmarks' or one command's. */
function help(topic: string[]): void {
  const name = topic.join(" ");
  if (name === "") console.log(topHelp());
  else if (name === "bench") console.log(benchHelp());
  else {
    const c = COMMANDS.find((x) => x.name === name);
    if (!c) usageError("", `no command ${JSON.stringify(name)}`);
    console.log(commandHelp(c));
  }
}

const BENCH_NAMES = Object.keys(BENCHMARKS).join(", ");
const [first, ...rest] = process.argv.slice(2);
if (first === undefined) {
  console.error(topHelp());
  process.exit(2);
} else if (first === "--help" || first === "-h") {
  console.log(topHelp());
} else if (first === "help") {
  help(rest);
} else if (first === "bench" && (rest[0] === "--help" || rest[0] === "-h")) {
  console.log(benchHelp());
} else {
  if (first === "bench" && rest[0] === undefined) usageError("bench", `which benchmark? ${BENCH_NAMES}`);
  // a command of two words (`bench stt`, `models fetch`) before one of one word (`models`)
  const twoWords =
    rest[0] !== undefined && (first === "bench" || COMMANDS.some((c) => c.name === `${first} ${rest[0]}`));
  const name = twoWords ? `${first} ${rest[0]}` : first;
  const argv = twoWords ? rest.slice(1) : rest;
  const usage = COMMANDS.find((c) => c.name === name);
  if (!usage) {
    if (first === "bench")
      usageError("bench", `unknown benchmark ${JSON.stringify(rest[0])}; available: ${BENCH_NAMES}`);
    usageError("", `unknown command ${JSON.stringify(first)}`);
  }
  // --help and argument errors answer before the command's modules (workerd, the runner) load
  parseCommand(usage, argv);
  await RUN[name]!(argv);
}
