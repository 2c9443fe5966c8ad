/**
 * Every `ozen` command's usage table, in one light module: `ozen --help` lists them without
 * loading the commands (workerd, the runner, the benchmarks), and each command reads its argv
 * against its own table (`parseCommand`).
 */
import { helpTable } from "./args.js";
import type { CommandUsage, OptionUsage } from "./args.js";
import { CHECK_NAMES, DEFAULT_CHECKS, limitJson, limitText } from "./check/limits.js";

const json = { type: "string", value: "FILE", help: "also write the JSON to FILE" } as const satisfies OptionUsage;

export const CALL = {
  name: "call",
  positionals: "URL",
  summary: "Place simulated Twilio calls against an edge: signed webhook and stream upgrade, 20 ms media at real time.",
  options: {
    audio: {
      type: "string",
      value: "FILE",
      help: "speech to play: any WAV, or other formats through ffmpeg (required)",
    },
    calls: { type: "string", value: "N", help: "concurrent calls (1)" },
    seconds: { type: "string", value: "S", help: "how long each call streams, the audio cycled (the audio's length)" },
    speed: { type: "string", value: "X", help: "pace, times real time (1)" },
    "auth-token": { type: "string", value: "T", help: "Twilio's auth token to sign with (TWILIO_AUTH_TOKEN)" },
    "public-url": { type: "string", value: "U", help: "the edge's PUBLIC_BASE_URL, which is signed (the URL)" },
    naive: { type: "boolean", help: "use the benchmark's naive handler (BENCH_NAIVE=on)" },
    "warmup-ms": { type: "string", value: "MS", help: "acks before this far into a call are not counted (0)" },
    json: { type: "string", value: "FILE", help: "write the summary to FILE instead of printing it" },
    phases: { type: "boolean", help: "print PHASE lines when the steady window starts and ends" },
    heard: {
      type: "string",
      value: "FILE",
      help: "write what the caller heard (Twilio's buffer played in real time) to FILE as a WAV (one call)",
    },
    "call-sid": {
      type: "string",
      value: "CA...",
      help: "the call's CallSid, so an agent can subscribe before it starts (one call; a new one)",
    },
  },
} as const satisfies CommandUsage;

export const DEMO = {
  name: "demo",
  summary:
    "The whole stack here (edge on workerd, runner, whisper worker) and one simulated call with real speech; " +
    "prints each partial with its latency, then the finals.",
  options: {
    audio: {
      type: "string",
      value: "FILE",
      help: "speech to call with (he/dialog/hebrew_short.wav from ../shared/data, else the project's English tools/speech/directory.wav)",
    },
    language: { type: "string", value: "he|en", help: "the speech's language (from its path: he/ is Hebrew)" },
    model: {
      type: "string",
      value: "M",
      help: "whisper model (tiny.en for English, the largest multilingual one for Hebrew)",
    },
    engine: {
      type: "string",
      value: "whisper|null",
      help: "null: the runner takes the audio and says nothing (whisper when installed)",
    },
  },
} as const satisfies CommandUsage;

export const CHECK = {
  name: "check",
  positionals: "URL",
  summary:
    "The playbook's GO checks against a running edge: one simulated call with speech, its events and the edge's " +
    "record; exit 0 only when every check passes (1: one failed, 2: no call was checked).",
  options: {
    token: { type: "string", value: "T", help: "the edge's API_TOKEN (OZEN_API_TOKEN, API_TOKEN)" },
    "auth-token": { type: "string", value: "T", help: "Twilio's auth token, to sign like Twilio (TWILIO_AUTH_TOKEN)" },
    "public-url": { type: "string", value: "U", help: "the edge's PUBLIC_BASE_URL, which is signed (the URL)" },
    "dev-vars": {
      type: "string",
      value: "FILE",
      help:
        "for a local URL (127.0.0.1, localhost), API_TOKEN, TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL not given " +
        "otherwise come from FILE, as `make dev` gave them to the edge (.dev.vars at the repo root)",
    },
    audio: {
      type: "string",
      value: "FILE",
      help: "speech to play (he/dialog/hebrew_short.wav from ../shared/data, else the project's tools/speech/directory.wav)",
    },
    "tail-ms": { type: "string", value: "MS", help: "silence after the speech (1500)" },
    events: {
      type: "string",
      value: "auto|poll",
      help: "auto: the events WebSocket when offered, else polling (auto)",
    },
    limit: {
      type: "string",
      multiple: true,
      value: "NAME=VALUE",
      help: "change one limit for this run: 800 (at most), 150..250 (a range), table or false (the value expected); repeatable",
    },
    json: { type: "string", value: "FILE", help: "write the checks as JSON to FILE" },
  },
  notes: [
    "The checks and their limits: " +
      CHECK_NAMES.map((n) => `${n} ${limitText(limitJson(DEFAULT_CHECKS[n].limit), DEFAULT_CHECKS[n].unit)}`).join(
        ", ",
      ) +
      ". docs/benchmarks.md says what each measures.",
  ],
} as const satisfies CommandUsage;

export const MODELS = {
  name: "models",
  summary: "The whisper models on this machine (the worker's own list); nothing is downloaded.",
  options: { json: { type: "boolean", help: "as JSON" } },
} as const satisfies CommandUsage;

export const MODELS_FETCH = {
  name: "models fetch",
  positionals: "REPO_ID",
  summary:
    "Downloads a CTranslate2 Whisper model from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN) into the worker's " +
    "models folder, verified against the hub's checksums.",
  options: {
    revision: { type: "string", value: "R", help: "a branch, tag or commit (main)" },
    dir: { type: "string", value: "D", help: "the folder to fetch into (the worker's models folder)" },
    json: { type: "boolean", help: "a JSON line for the result" },
  },
  notes: [
    "exit status: 0 fetched and verified, 2 usage or offline, 3 not found or no access, 4 not a CTranslate2 " +
      "Whisper model, 5 network, 6 disk space, 7 checksum",
  ],
} as const satisfies CommandUsage;

export const BENCH_INGEST = {
  name: "bench ingest",
  summary:
    "The edge on workerd with the null runner and N real-time calls from another process, against the naive " +
    "handler in the same run, then mu-law decode microbenchmarks.",
  options: {
    calls: { type: "string", value: "N", help: "concurrent calls (100)" },
    seconds: { type: "string", value: "S", help: "measured seconds per call (20)" },
    "warmup-s": { type: "string", value: "S", help: "seconds before the measured window (3)" },
    audio: {
      type: "string",
      value: "FILE",
      help: "speech to play (en/asterisk-8k/demo-thanks.wav from ../shared/data, else the project's tools/speech/directory.wav)",
    },
    json,
    "skip-naive": { type: "boolean", help: "measure ozen's handler only" },
  },
} as const satisfies CommandUsage;

export const BENCH_RUNNER = {
  name: "bench runner",
  summary:
    "The runner process with the Google engine against a loopback Speech service speaking Google's protos, " +
    "LINEAR16 and MULAW in the same run; streams roll over every 2-3 s.",
  options: {
    calls: { type: "string", value: "N", help: "concurrent calls (20)" },
    seconds: { type: "string", value: "S", help: "seconds per call (10)" },
    json,
  },
} as const satisfies CommandUsage;

export const BENCH_RECORDS = {
  name: "bench records",
  summary:
    "Call records and webhooks: finals written to D1 through the calls' objects, then recovery after D1 and " +
    "the webhook receiver fail together and come back.",
  options: {
    calls: { type: "string", value: "N", help: "calls per round (10)" },
    seconds: { type: "string", value: "S", help: "seconds of audio per call (20)" },
    speed: { type: "string", value: "X", help: "pace, times real time (5)" },
    "outage-s": { type: "string", value: "S", help: "the outage lasts this long after the calls ended (10)" },
    "retry-max-ms": { type: "string", value: "MS", help: "D1 and webhook retry cap, 1000 or more (60000)" },
    json,
  },
} as const satisfies CommandUsage;

export const BENCH_FANOUT = {
  name: "bench fanout",
  summary:
    "One call's events fanned out to N agent subscribers at stepped rates, against 1 subscriber in the same run.",
  options: {
    subscribers: { type: "string", value: "N", help: "subscribers (10)" },
    rates: { type: "string", value: "R1,R2,..", help: "events/s per step (100,200,500,1000,2000)" },
    seconds: { type: "string", value: "S", help: "seconds per step (3)" },
    stream: { type: "string", value: "call|account", help: "GET /calls/{CallSid}/events or GET /events (call)" },
    json,
  },
} as const satisfies CommandUsage;

export const BENCH_FAIRNESS = {
  name: "bench fairness",
  summary:
    "A real-time call's latency alone, beside another real-time call, and beside a call fed faster than real " +
    "time with and without the runner's pacing, on a stand-in engine of fixed shared capacity.",
  options: {
    seconds: { type: "string", value: "S", help: "seconds per phase (20)" },
    speed: { type: "string", value: "X", help: "the fast call's pace, times real time (5)" },
    capacity: { type: "string", value: "C", help: "seconds of audio the shared engine transcribes per second (3)" },
    "buffer-ms": { type: "string", value: "MS", help: "the runner's RELAY_BUFFER_MS, the pace's slack (2000)" },
    json,
  },
} as const satisfies CommandUsage;

export const BENCH_SOAK = {
  name: "bench soak",
  summary:
    "Memory under load: R rounds of N real-time calls through the edge on workerd with the null runner; " +
    "RSS of workerd and the runner per round, against a minimal Worker with --baseline.",
  options: {
    calls: { type: "string", value: "N", help: "concurrent calls per round (20)" },
    seconds: { type: "string", value: "S", help: "seconds per call (60)" },
    rounds: { type: "string", value: "R", help: "rounds (4)" },
    "settle-s": { type: "string", value: "S", help: "idle seconds after each round before its RSS is read (15)" },
    audio: {
      type: "string",
      value: "FILE",
      help: "speech to play (en/asterisk-8k/demo-thanks.wav from ../shared/data, else the project's tools/speech/directory.wav)",
    },
    baseline: { type: "boolean", help: "the same rounds, interleaved, against a minimal Worker on its own workerd" },
    json,
  },
} as const satisfies CommandUsage;

export const BENCH_STT = {
  name: "bench stt",
  summary:
    "Each recording of each set as a real-time call through edge, runner and whisper worker, against WhisperLive " +
    "and an offline pass in the same run: TTFP, partial interval, TTFS, WER, CPU, max_realtime_calls.",
  options: {
    engine: { type: "string", default: "whisper", value: "whisper", help: "the runner's engine (whisper)" },
    model: {
      type: "string",
      default: "tiny.en",
      value: "M",
      help: "whisper model, a name `ozen models` lists (tiny.en)",
    },
    set: {
      type: "string",
      multiple: true,
      value: "DIR",
      help:
        "an evaluation set: WAVs with their transcripts (required; repeat for more sets); its language comes from " +
        "the set (transcripts.json `language`, a README `language: he` line) or a he/ folder",
    },
    json: { type: "string", value: "FILE", help: "write the figures to FILE (details to FILE.details.json)" },
    files: { type: "string", value: "N", help: "at most N recordings per set (all)" },
    "tail-s": { type: "string", value: "S", help: "silence after each recording (3)" },
    "max-calls": { type: "string", value: "N", help: "concurrent calls tried for max_realtime_calls, 0: skip (8)" },
    "ramp-p95-ms": {
      type: "string",
      value: "MS",
      help: "a ramp level holds while TTFP p95 and TTFS p95 are at most MS and every turn is finalised (2000)",
    },
    anchor: {
      type: "string",
      default: "whisperlive",
      value: "whisperlive|none",
      help: "the same-run anchor (whisperlive)",
    },
    "anchor-wait-s": {
      type: "string",
      value: "S",
      help: "how long WhisperLive's line stays open for its last segment (10)",
    },
    language: { type: "string", value: "he|en", help: "force one language on every set (from each set)" },
  },
  notes: [
    "make bench-install installs WhisperLive's venv (stt-runner/whisper/.venv-bench); --anchor none runs without it.",
  ],
} as const satisfies CommandUsage;

export const BENCH_VAD = {
  name: "bench vad",
  summary:
    "The runner's speech activity detector against Silero (the whisper worker's 8 kHz ONNX) on real audio: " +
    "onset latency, missed onsets, false starts, CPU.",
  options: {
    set: {
      type: "string",
      multiple: true,
      value: "DIR|FILE",
      help: "WAVs to measure on (../shared/data/vad/aepyx_8k.wav and ../shared/data/en/asterisk-8k)",
    },
    "margin-db": { type: "string", value: "DB", help: "speech must be this far above the noise floor (12)" },
    "min-dbfs": { type: "string", value: "DBFS", help: "never speech below this level (-42); write --min-dbfs=-45" },
    "onset-ms": { type: "string", value: "MS", help: "speech needed to start (60)" },
    "hangover-ms": { type: "string", value: "MS", help: "quiet needed to end (400)" },
    json,
  },
} as const satisfies CommandUsage;

export const STACK = {
  name: "stack",
  summary:
    "The local stack (the edge on workerd, a runner process) until Ctrl-C: prints a JSON line with its URL and " +
    "tokens, for trying an agent (docs/agent-control.md, Try it) and the client libraries' tests.",
  options: {
    engine: { type: "string", value: "null|whisper", help: "the runner's engine (null: takes audio, says nothing)" },
    model: { type: "string", value: "M", help: "whisper model (tiny.en for English, the largest multilingual for he)" },
    language: { type: "string", value: "he|en", help: "whisper's language (en)" },
    set: {
      type: "string",
      multiple: true,
      value: "NAME=VALUE",
      help: "an edge setting (docs/settings.md), e.g. BARGE_IN=speech, WEBHOOK_URL=...; repeatable",
    },
    port: { type: "string", value: "N", help: "the edge's port (a free one)" },
    "api-token": { type: "string", value: "T", help: "the edge's API_TOKEN (local-api-token)" },
    "until-stdin-closes": { type: "boolean", help: "also stop when stdin closes (a test harness's child)" },
  },
} as const satisfies CommandUsage;

export const BENCH_TURN = {
  name: "bench turn",
  summary:
    "Turns of a conversation through edge, runner (whisper) and an agent on @ozen/client: turn gap split into " +
    "the engine's TTFS and ozen's share, barge-in latency per policy, frames after a clear, the play path.",
  options: {
    set: {
      type: "string",
      multiple: true,
      value: "DIR",
      help: "the caller's utterances: WAVs with transcripts (../shared/data/en/asterisk-8k, else tools/speech)",
    },
    model: { type: "string", value: "M", help: "whisper model (tiny.en; the largest multilingual one for he)" },
    language: { type: "string", value: "he|en", help: "the utterances' language (en); he: he/saspeech by default" },
    files: { type: "string", value: "N", help: "turns: at most N utterances of the set, 6 s of speech at most (20)" },
    "barge-ins": { type: "string", value: "N", help: "rounds of talking over the agent per policy (10)" },
    "play-samples": { type: "string", value: "N", help: "short utterances timed on an idle line (100)" },
    json,
  },
} as const satisfies CommandUsage;

/** The benchmarks, as `ozen bench NAME`. */
export const BENCHMARKS = {
  ingest: BENCH_INGEST,
  runner: BENCH_RUNNER,
  records: BENCH_RECORDS,
  fanout: BENCH_FANOUT,
  fairness: BENCH_FAIRNESS,
  soak: BENCH_SOAK,
  stt: BENCH_STT,
  vad: BENCH_VAD,
  turn: BENCH_TURN,
} as const;

/** The commands in the order `ozen --help` lists them. */
export const COMMANDS: readonly CommandUsage[] = [
  DEMO,
  CALL,
  CHECK,
  MODELS,
  MODELS_FETCH,
  STACK,
  ...Object.values(BENCHMARKS),
];

/** `ozen --help`: every command with its summary. */
export function topHelp(): string {
  const rows: [string, string][] = COMMANDS.map((c) => [
    `${c.name}${c.positionals ? ` ${c.positionals}` : ""}`,
    c.summary,
  ]);
  rows.push(["help [COMMAND]", "this help, or a command's (as `ozen COMMAND --help`)"]);
  return [
    "usage: ozen COMMAND [options]",
    "",
    "ozen's command line: the call simulator, the demo, the GO check and the benchmarks.",
    "",
    "commands:",
    ...helpTable(rows),
    "",
    "`ozen COMMAND --help` shows a command's options.",
  ].join("\n");
}

/** `ozen bench --help`: the benchmarks. */
export function benchHelp(): string {
  const rows: [string, string][] = Object.entries(BENCHMARKS).map(([name, c]) => [name, c.summary]);
  return [
    "usage: ozen bench BENCHMARK [options]",
    "",
    "Benchmarks are programs: each prints JSON with a baseline measured in the same run.",
    "",
    "benchmarks:",
    ...helpTable(rows),
    "",
    "`ozen bench BENCHMARK --help` shows its options.",
  ].join("\n");
}
