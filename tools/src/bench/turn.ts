/**
 * ozen bench turn: a conversation's turns through the whole stack -- a simulated Twilio caller
 * (real-time 20 ms frames, Twilio's playout buffer), the edge on workerd, the runner with the
 * whisper engine -- and an agent on `@ozen/client` in this process that answers each final with a
 * recorded prompt, streamed as a TTS streams (100 ms chunks, 4x real time). The agent runs in
 * process (not the Python example agent) so its own time is near zero and measured apart: what
 * is left is the engine's and ozen's.
 *
 * Phases, on one call per stack:
 * 1. **turns**: the caller says an utterance of the set, waits for the whole answer, pauses.
 *    - turn gap: the caller's end of speech (the wall time the last speech frame was sent) ->
 *      the first media frame of the answer at the caller;
 *    - split: the engine's TTFS (end of speech -> the final's `wallMs`, the runner's clock),
 *      ozen's share (the final's `wallMs` -> the agent has it, plus the answer's first chunk
 *      leaving the agent -> its first media frame at the caller), and the agent's own time.
 * 2. **play path**: short utterances (100 ms of 16 kHz PCM) one at a time on an idle line: the
 *    first audio chunk handed to the agent's socket -> its first media frame at the caller.
 * 3. **barge-in**, once per policy (`BARGE_IN=speech`, then a new stack with `meaningful`): the
 *    caller asks, and 700 ms into the answer says another utterance over it.
 *    - barge-in latency: the caller's speech onset (the wall time its first speech frame was
 *      sent) -> Twilio's `clear` at the caller; TTFP beside it (the onset -> the first partial
 *      of that speech at the agent), the target of `meaningful` being TTFP + 200 ms;
 *    - frames after the clear: media frames at the caller after a `clear`, before the agent's
 *      next answer starts.
 * Speech onset and end are the first and last 20 ms frames of each file that hold speech
 * (`speechOnsetFrame`: -40 dBFS and 20 dB above the file's noise floor).
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { TwilioPlayoutBuffer, percentile } from "@ozen/shared";
import { OzenClient, nodeSocket, readWav } from "@ozen/client/node";
import type { CallMessage, CallStream, ClientSocket, FinalEvent, SocketFactory } from "@ozen/client/node";
import { fail, parseCommand, positive } from "../args.js";
import { loadAudio8k } from "../audio.js";
import { speechOnsetFrame } from "../check/onset.js";
import { BENCH_TURN } from "../commands.js";
import { startLocalStack } from "../local-stack.js";
import type { LocalStack } from "../local-stack.js";
import { newIdentity, openStream, requestTwiml, TwilioStreamScript } from "../simulator.js";
import type { CallIdentity } from "../simulator.js";
import { PROJECT_SPEECH_DIR, evaluationPath } from "../speech-data.js";
import { bestMultilingual, findModel, listModels, repoRoot } from "../whisper-env.js";
import { loadSet } from "./stt-sets.js";

const FRAME_MS = 20;
const FRAME_BYTES = 160;
const MULAW_SILENCE = 0xff;
/** Files whose speech is longer than this are left out (a round should stay short). */
const MAX_SPEECH_MS = 6000;
/** The answer: the example agent's prompt (16 kHz PCM16, 4.4 s). */
const PROMPT = path.join(repoRoot, "clients/python/examples/prompt.wav");
const TTS_CHUNK_MS = 100;
const TTS_SPEEDUP = 4;
/** A final closes the caller's turn when its audio reaches this close to the turn's end, ms. */
const END_TOLERANCE_MS = 600;
/** How far into the answer the caller starts talking over it, ms. */
const BARGE_IN_AFTER_MS = 700;
/** How long anything may take before a round counts as missed, ms. */
const ROUND_TIMEOUT_MS = 12_000;

const benchStart = Date.now();
function log(msg: string): void {
  process.stderr.write(`bench turn [${((Date.now() - benchStart) / 1000).toFixed(0)} s]: ${msg}\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const epoch = (perfMs: number) => performance.timeOrigin + perfMs;
const round1 = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
const p = (values: readonly number[], q: number) => round1(percentile(values, q));

async function until<T>(what: string, get: () => T | undefined | false, timeoutMs: number): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) {
      log(`timed out waiting for ${what}`);
      return undefined;
    }
    await sleep(5);
  }
}

/** One utterance of the set, as the caller says it. */
interface Utterance {
  readonly id: string;
  readonly mulaw: Uint8Array;
  /** First and last 20 ms frame holding speech. */
  readonly onsetFrame: number;
  readonly endFrame: number;
}

function utteranceOf(file: string): Utterance | undefined {
  const audio = loadAudio8k(file);
  const frames = Math.floor(audio.pcm.length / FRAME_BYTES);
  const pcm = audio.pcm.subarray(0, frames * FRAME_BYTES);
  const onset = speechOnsetFrame(pcm);
  const fromEnd = speechOnsetFrame(pcm.slice().reverse());
  if (onset === undefined || fromEnd === undefined) return undefined;
  const mulaw = new Uint8Array(frames * FRAME_BYTES);
  mulaw.set(audio.mulaw.subarray(0, frames * FRAME_BYTES));
  return { id: path.basename(file), mulaw, onsetFrame: onset, endFrame: frames - 1 - fromEnd };
}

// ---------------------------------------------------------------------------------------------
// The caller: Twilio's side, frames from a queue of utterances (silence between them)

class Caller {
  /** performance.now() each frame was sent, by frame index (= call audio ms / 20). */
  readonly frameSentAt: number[] = [];
  /** Arrival of each outbound media frame and each `clear`. */
  readonly media: number[] = [];
  readonly clears: number[] = [];
  private readonly queue: Uint8Array[] = [];
  private queuedFrames = 0;
  private offset = 0;
  private readonly silence = new Uint8Array(FRAME_BYTES).fill(MULAW_SILENCE);
  private timer: ReturnType<typeof setTimeout> | undefined;
  private playout: ReturnType<typeof setInterval> | undefined;
  private readonly closed: Promise<void>;

  private constructor(
    private readonly ws: WebSocket,
    private readonly script: TwilioStreamScript,
  ) {
    const twilio = new TwilioPlayoutBuffer();
    const startAt = performance.now();
    const clock = () => performance.now() - startAt;
    const played = (step: { echoes: string[] }) => {
      for (const name of step.echoes) if (ws.readyState === WebSocket.OPEN) ws.send(script.mark(name));
    };
    ws.on("message", (data) => {
      const at = performance.now();
      const m = JSON.parse(data.toString()) as {
        event?: string;
        media?: { payload?: string };
        mark?: { name?: string };
      };
      if (m.event === "media") {
        this.media.push(at);
        played(twilio.media(Buffer.from(m.media?.payload ?? "", "base64"), clock()));
      } else if (m.event === "clear") {
        this.clears.push(at);
        played(twilio.clear(clock()));
      } else if (m.event === "mark" && !m.mark?.name?.startsWith("ozen-ack:")) {
        played(twilio.mark(m.mark?.name ?? "", clock()));
      }
    });
    this.closed = new Promise((r) => ws.once("close", () => r()));
    this.playout = setInterval(() => played(twilio.advance(clock())), 10);
  }

  static async call(stack: LocalStack, identity: CallIdentity): Promise<Caller> {
    const twiml = await requestTwiml({ edgeUrl: stack.url, authToken: stack.authToken, identity });
    const ws = await openStream({ edgeUrl: stack.url, authToken: stack.authToken, streamUrl: twiml.streamUrl });
    const script = new TwilioStreamScript(identity, twiml.parameters);
    const c = new Caller(ws, script);
    ws.send(script.connected());
    ws.send(script.start());
    c.tick(performance.now());
    return c;
  }

  /** Queues `u` after what is queued; returns the frame index it starts at. */
  speak(mulaw: Uint8Array): number {
    const start = this.frameSentAt.length + this.queuedFrames;
    this.queue.push(mulaw);
    this.queuedFrames += mulaw.length / FRAME_BYTES;
    return start;
  }

  /** When frame `i` was sent (waits for it). */
  async sentAt(i: number): Promise<number> {
    while (this.frameSentAt.length <= i) await sleep(5);
    return this.frameSentAt[i]!;
  }

  get framesSent(): number {
    return this.frameSentAt.length;
  }

  private next(): Uint8Array {
    const head = this.queue[0];
    if (!head) return this.silence;
    const frame = head.subarray(this.offset, this.offset + FRAME_BYTES);
    this.offset += FRAME_BYTES;
    this.queuedFrames--;
    if (this.offset >= head.length) {
      this.queue.shift();
      this.offset = 0;
    }
    return frame;
  }

  private tick(t0: number): void {
    const due = Math.floor((performance.now() - t0) / FRAME_MS) + 1;
    while (this.frameSentAt.length < due && this.ws.readyState === WebSocket.OPEN) {
      const m = this.script.media(this.next());
      this.ws.send(m.text);
      this.frameSentAt.push(performance.now());
    }
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const wait = t0 + FRAME_MS * this.frameSentAt.length - performance.now();
    this.timer = setTimeout(() => this.tick(t0), Math.max(1, Math.min(FRAME_MS, wait)));
  }

  async hangUp(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.playout) clearInterval(this.playout);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(this.script.stop());
    await Promise.race([this.closed, sleep(3000)]);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
  }
}

// ---------------------------------------------------------------------------------------------
// The agent: @ozen/client in this process

interface Answer {
  readonly id: string;
  readonly final: FinalEvent;
  /** performance.now() the agent had the final, and handed the first audio chunk to its socket. */
  readonly finalAt: number;
  firstChunkAt?: number;
  outcome?: "finished" | "cleared";
}

class Agent {
  /** Answer the final that reaches this call audio ms (the caller's turn end), else none. */
  answerUpTo: number | undefined;
  readonly answers: Answer[] = [];
  /** Partials with text, when they arrived (for TTFP). */
  readonly partials: { atMs: number; audioEndMs: number }[] = [];
  /** Meaningful events, when they arrived (what `BARGE_IN=meaningful` waits for). */
  readonly meaningfuls: { atMs: number; audioEndMs: number }[] = [];
  private readonly format: { encoding: "pcm16"; sampleRateHz: number };
  private readonly prompt: Uint8Array;
  private reading: Promise<void> | undefined;
  private n = 0;
  private started = false;

  constructor(
    private readonly stream: CallStream,
    /** Each play's first audio chunk handed to the socket, performance.now(). */
    readonly firstChunkAt: Map<string, number>,
  ) {
    const wav = readWav(new Uint8Array(readFileSync(PROMPT)));
    if (wav.format.encoding !== "pcm16") throw new Error(`${PROMPT} is not PCM16`);
    this.format = { encoding: "pcm16", sampleRateHz: wav.format.sampleRateHz };
    this.prompt = wav.audio;
  }

  /** A socket factory that notes when each utterance's first audio chunk is handed over. */
  static timedSocket(firstChunkAt: Map<string, number>): SocketFactory {
    return async (url, token) => {
      const ws = await nodeSocket(url, token);
      const timed: ClientSocket = {
        get readyState() {
          return ws.readyState;
        },
        send(data: string) {
          if (data.startsWith('{"type":"play","id":"') && data.includes('"audio":"')) {
            const id = data.slice(21, data.indexOf('"', 21));
            if (!firstChunkAt.has(id)) firstChunkAt.set(id, performance.now());
          }
          ws.send(data);
        },
        close: (code, reason) => ws.close(code, reason),
        addEventListener: ws.addEventListener.bind(ws) as ClientSocket["addEventListener"],
      };
      return timed;
    };
  }

  static async start(stack: LocalStack, callSid: string): Promise<Agent> {
    const firstChunkAt = new Map<string, number>();
    const client = new OzenClient({
      baseUrl: stack.url,
      token: stack.apiToken,
      socket: Agent.timedSocket(firstChunkAt),
    });
    const stream = client.call(callSid);
    await stream.open();
    const agent = new Agent(stream, firstChunkAt);
    agent.reading = agent.read();
    await until("call.started", () => agent.started, 30_000);
    return agent;
  }

  private async read(): Promise<void> {
    for await (const m of this.stream) this.on(m, performance.now());
  }

  private on(m: CallMessage, at: number): void {
    if (m.type === "call.started") this.started = true;
    else if (m.type === "partial" && m.text.trim()) this.partials.push({ atMs: at, audioEndMs: m.audioEndMs });
    else if (m.type === "meaningful") this.meaningfuls.push({ atMs: at, audioEndMs: m.audioEndMs });
    else if (m.type === "final" && m.text.trim()) {
      const upTo = this.answerUpTo;
      if (upTo === undefined || m.audioEndMs < upTo - END_TOLERANCE_MS) return;
      this.answerUpTo = undefined;
      const a: Answer = { id: `answer-${++this.n}`, final: m, finalAt: at };
      this.answers.push(a);
      void this.speak(a);
    }
  }

  private async speak(a: Answer): Promise<void> {
    const prompt = this.prompt;
    const per = (this.format.sampleRateHz * 2 * TTS_CHUNK_MS) / 1000;
    async function* tts(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < prompt.length; at += per) {
        yield prompt.subarray(at, at + per);
        await sleep(TTS_CHUNK_MS / TTS_SPEEDUP);
      }
    }
    try {
      const playback = await this.stream.play(tts(), { id: a.id, format: this.format });
      const outcome = await playback.wait(60_000);
      a.outcome = outcome.type === "playback.finished" ? "finished" : "cleared";
    } catch (e) {
      log(`answer ${a.id}: ${String(e)}`);
      a.outcome = "cleared";
    }
    a.firstChunkAt = this.firstChunkAt.get(a.id);
  }

  /** One short utterance on an idle line; resolves with its first chunk's send time. */
  async playShort(id: string, pcm: Uint8Array): Promise<number | undefined> {
    const playback = await this.stream.play(pcm, { id, format: { encoding: "pcm16", sampleRateHz: 16000 } });
    await playback.wait(10_000);
    return this.firstChunkAt.get(id);
  }

  async close(): Promise<void> {
    await this.stream.close();
    await this.reading;
  }
}

// ---------------------------------------------------------------------------------------------
// The phases

interface TurnFigures {
  turnGapMs: number[];
  ttfsMs: number[];
  ozenShareMs: number[];
  deliveryMs: number[];
  playPathInTurnMs: number[];
  agentMs: number[];
  unanswered: number;
}

/** First media arrival at the caller at or after `fromMs`. */
function firstMediaAfter(caller: Caller, fromMs: number): number | undefined {
  return caller.media.find((t) => t >= fromMs);
}

async function turnPhase(caller: Caller, agent: Agent, utterances: readonly Utterance[]): Promise<TurnFigures> {
  const f: TurnFigures = {
    turnGapMs: [],
    ttfsMs: [],
    ozenShareMs: [],
    deliveryMs: [],
    playPathInTurnMs: [],
    agentMs: [],
    unanswered: 0,
  };
  for (const u of utterances) {
    const answered = agent.answers.length;
    const start = caller.speak(u.mulaw);
    agent.answerUpTo = (start + u.endFrame + 1) * FRAME_MS;
    const endAt = await caller.sentAt(start + u.endFrame);
    const answer = await until("an answer", () => agent.answers[answered], ROUND_TIMEOUT_MS);
    if (!answer) {
      f.unanswered++;
      agent.answerUpTo = undefined;
      continue;
    }
    await until("the answer's end", () => answer.outcome, 30_000);
    await until("the caller to be quiet", () => caller.framesSent >= start + u.mulaw.length / FRAME_BYTES, 30_000);
    const sent = answer.firstChunkAt;
    const heard = sent === undefined ? undefined : firstMediaAfter(caller, sent);
    if (sent === undefined || heard === undefined) {
      f.unanswered++;
      continue;
    }
    const delivery = epoch(answer.finalAt) - answer.final.wallMs;
    f.turnGapMs.push(heard - endAt);
    f.ttfsMs.push(answer.final.wallMs - epoch(endAt));
    f.deliveryMs.push(delivery);
    f.playPathInTurnMs.push(heard - sent);
    f.ozenShareMs.push(delivery + (heard - sent));
    f.agentMs.push(sent - answer.finalAt);
    log(
      `turn ${u.id}: gap ${(heard - endAt).toFixed(0)} ms (TTFS ${(answer.final.wallMs - epoch(endAt)).toFixed(0)}, ` +
        `ozen ${(delivery + heard - sent).toFixed(1)}, agent ${(sent - answer.finalAt).toFixed(1)})`,
    );
    await sleep(300);
  }
  return f;
}

async function playPathPhase(caller: Caller, agent: Agent, samples: number): Promise<number[]> {
  const pcm = new Uint8Array(3200); // 100 ms of 16 kHz PCM16: a 400 Hz tone
  const v = new DataView(pcm.buffer);
  for (let i = 0; i < 1600; i++) v.setInt16(i * 2, Math.round(5000 * Math.sin((2 * Math.PI * 400 * i) / 16000)), true);
  const out: number[] = [];
  for (let k = 0; k < samples; k++) {
    const sent = await agent.playShort(`path-${k}`, pcm);
    const heard = sent === undefined ? undefined : firstMediaAfter(caller, sent);
    if (sent !== undefined && heard !== undefined) out.push(heard - sent);
    await sleep(20);
  }
  return out;
}

interface BargeInFigures {
  bargeInMs: number[];
  ttfpMs: number[];
  /** barge-in latency minus TTFP, per round (meaningful's target: at most 200 ms). */
  overTtfpMs: number[];
  /** The onset -> the meaningful event of that speech at the agent. */
  meaningfulMs: number[];
  framesAfterClear: number;
  missed: number;
  rounds: number;
}

async function bargeInPhase(
  caller: Caller,
  agent: Agent,
  utterances: readonly Utterance[],
  rounds: number,
): Promise<BargeInFigures> {
  const f: BargeInFigures = {
    bargeInMs: [],
    ttfpMs: [],
    overTtfpMs: [],
    meaningfulMs: [],
    framesAfterClear: 0,
    missed: 0,
    rounds,
  };
  const clearsSeen: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const question = utterances[i % utterances.length]!;
    const over = utterances[(i + 1) % utterances.length]!;
    const answered = agent.answers.length;
    const start = caller.speak(question.mulaw);
    agent.answerUpTo = (start + question.endFrame + 1) * FRAME_MS;
    const answer = await until("an answer", () => agent.answers[answered], ROUND_TIMEOUT_MS);
    const sent = answer && (await until("its first chunk", () => agent.firstChunkAt.get(answer.id), 5000));
    const heard = sent && (await until("its first frame at the caller", () => firstMediaAfter(caller, sent), 5000));
    if (!answer || !heard) {
      f.missed++;
      agent.answerUpTo = undefined;
      await sleep(2000);
      continue;
    }
    await sleep(BARGE_IN_AFTER_MS);
    if (answer.outcome) {
      f.missed++; // it was over before the caller could talk over it
      continue;
    }
    const overStart = caller.speak(over.mulaw);
    const onsetAt = await caller.sentAt(overStart + over.onsetFrame);
    const clearAt = await until("the clear", () => caller.clears.find((t) => t >= heard), ROUND_TIMEOUT_MS);
    await until(
      "the caller to be quiet",
      () => caller.framesSent >= overStart + over.mulaw.length / FRAME_BYTES,
      30_000,
    );
    if (clearAt === undefined || clearAt < onsetAt) {
      f.missed++;
    } else {
      clearsSeen.push(clearAt);
      f.bargeInMs.push(clearAt - onsetAt);
      // looked up once the caller is done: with BARGE_IN=speech the clear comes before any partial
      const onsetAudioMs = (overStart + over.onsetFrame) * FRAME_MS;
      const heardSpeech = (x: { atMs: number; audioEndMs: number }) => x.atMs >= onsetAt && x.audioEndMs > onsetAudioMs;
      const partial = agent.partials.find(heardSpeech);
      if (partial) {
        f.ttfpMs.push(partial.atMs - onsetAt);
        f.overTtfpMs.push(clearAt - partial.atMs);
      }
      const meaningful = agent.meaningfuls.find(heardSpeech);
      if (meaningful) f.meaningfulMs.push(meaningful.atMs - onsetAt);
      log(
        `barge-in ${i + 1}: ${(clearAt - onsetAt).toFixed(0)} ms after the onset` +
          (partial ? ` (TTFP ${(partial.atMs - onsetAt).toFixed(0)} ms)` : ""),
      );
    }
    await sleep(1500); // the interruption's own final comes and is not answered
    agent.answerUpTo = undefined;
  }
  // frames after a clear: media at the caller after it, before the next answer's first chunk
  const starts = [...agent.firstChunkAt.values()].sort((a, b) => a - b);
  for (const clearAt of clearsSeen) {
    const next = starts.find((t) => t > clearAt) ?? Infinity;
    f.framesAfterClear += caller.media.filter((t) => t > clearAt && t < next).length;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------

interface StackRun {
  readonly agent: Agent;
  readonly caller: Caller;
  readonly stack: LocalStack;
  readonly callSid: string;
}

async function withStack<T>(
  policy: "speech" | "meaningful",
  runnerEnv: NodeJS.ProcessEnv,
  work: (r: StackRun) => Promise<T>,
): Promise<{ result: T; voice: Record<string, unknown> | undefined }> {
  log(`starting the stack (BARGE_IN=${policy}) ...`);
  const stack = await startLocalStack({
    runner: { process: "whisper", env: runnerEnv },
    vars: { GREETING: "agent", BARGE_IN: policy },
  });
  try {
    const identity = newIdentity();
    const caller = await Caller.call(stack, identity);
    const agent = await Agent.start(stack, identity.callSid);
    await sleep(500);
    const result = await work({ agent, caller, stack, callSid: identity.callSid });
    const stats = (await (
      await fetch(`${stack.url}/calls/${identity.callSid}/stats`, {
        headers: { Authorization: `Bearer ${stack.apiToken}` },
      })
    ).json()) as { voice?: Record<string, unknown> };
    await caller.hangUp();
    await agent.close();
    return { result, voice: stats.voice };
  } finally {
    await stack.close();
  }
}

function loadUtterances(sets: readonly string[], max: number): { utterances: Utterance[]; source: string } {
  const files: string[] = [];
  let source = sets.map((d) => path.relative(repoRoot, path.resolve(d))).join(", ");
  for (const dir of sets) for (const item of loadSet(dir).items) files.push(item.audioPath);
  if (files.length === 0) fail(`no WAV files with transcripts in ${source}`);
  const utterances: Utterance[] = [];
  for (const file of files) {
    if (utterances.length >= max) break;
    const u = utteranceOf(file);
    if (u && (u.endFrame - u.onsetFrame) * FRAME_MS <= MAX_SPEECH_MS && u.endFrame > u.onsetFrame) utterances.push(u);
  }
  if (utterances.length === 0) fail(`no utterance of ${source} has speech of at most ${MAX_SPEECH_MS} ms`);
  source = `${source} (${utterances.length} utterances)`;
  return { utterances, source };
}

/** The edge's own voice counters of a call (`GET /calls/{CallSid}/stats`, `voice`), summarised. */
function edgeVoice(v: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!v) return undefined;
  const list = (k: string) => (Array.isArray(v[k]) ? (v[k] as number[]) : []);
  return {
    plays: v["plays"],
    bargeIns: v["bargeIns"],
    chunksAfterClear: v["chunksAfterClear"],
    refused: v["refused"],
    // the edge's own clock, message in -> media out, its last 100 sends at once (workerd's timers are coarse)
    playPathMs_p50: p(list("playPathMs"), 0.5),
    playPathMs_p99: p(list("playPathMs"), 0.99),
    bargeInLatencyMs_p50: p(list("bargeInLatencyMs"), 0.5),
  };
}

export async function benchTurn(argv: string[]): Promise<void> {
  const { values } = parseCommand(BENCH_TURN, argv);
  const language = values.language ?? "en";
  if (language !== "en" && language !== "he") fail(`--language is he or en, not ${JSON.stringify(language)}`);
  let sets = values.set ?? [];
  if (sets.length === 0) {
    const shared = evaluationPath(language === "he" ? "he/saspeech" : "en/asterisk-8k");
    if ("path" in shared) sets = [shared.path];
    else {
      log(`${shared.skip}; the project's own speech (tools/speech) stands in`);
      sets = [PROJECT_SPEECH_DIR];
    }
  }
  const files = positive("files", values.files, 20);
  const rounds = positive("barge-ins", values["barge-ins"], 10, true);
  const playSamples = positive("play-samples", values["play-samples"], 100, true);
  const { utterances, source } = loadUtterances(sets, files);
  const listed = listModels();
  if (!listed.ok) fail(listed.message);
  const model = values.model
    ? findModel(listed.models, values.model)
    : language === "en"
      ? (listed.models.find((m) => m.name === "tiny.en") ?? bestMultilingual(listed.models))
      : bestMultilingual(listed.models);
  if (!model || "error" in model) fail(model ? model.error : "no whisper model here: run `make install`");
  const runnerEnv = { WHISPER_MODEL: model.path, WHISPER_LANGUAGE: language, HF_HUB_OFFLINE: "1" };
  const loadStart = os.loadavg();
  log(`${source}, whisper ${model.name} (${language})`);

  const speech = await withStack("speech", runnerEnv, async ({ agent, caller }) => {
    const turns = await turnPhase(caller, agent, utterances);
    log(`play path: ${playSamples} short utterances on an idle line ...`);
    const playPath = await playPathPhase(caller, agent, playSamples);
    const bargeIn = await bargeInPhase(caller, agent, utterances, rounds);
    return { turns, playPath, bargeIn };
  });
  const meaningful = await withStack("meaningful", runnerEnv, async ({ agent, caller }) => {
    const bargeIn = await bargeInPhase(caller, agent, utterances, rounds);
    return { bargeIn };
  });

  const t = speech.result.turns;
  const byPolicy = <T>(f: (b: BargeInFigures) => T) => ({
    speech: f(speech.result.bargeIn),
    meaningful: f(meaningful.result.bargeIn),
  });
  const out = {
    turn_gap_ms_p50: p(t.turnGapMs, 0.5),
    turn_gap_ms_p95: p(t.turnGapMs, 0.95),
    engine_ttfs_ms_p50: p(t.ttfsMs, 0.5),
    engine_ttfs_ms_p95: p(t.ttfsMs, 0.95),
    ozen_share_ms_p50: p(t.ozenShareMs, 0.5),
    ozen_share_ms_p95: p(t.ozenShareMs, 0.95),
    agent_ms_p50: p(t.agentMs, 0.5),
    barge_in_ms_p50: byPolicy((b) => p(b.bargeInMs, 0.5)),
    barge_in_ms_p95: byPolicy((b) => p(b.bargeInMs, 0.95)),
    ttfp_ms_p50: byPolicy((b) => p(b.ttfpMs, 0.5)),
    barge_in_over_ttfp_ms_p50: byPolicy((b) => p(b.overTtfpMs, 0.5)),
    meaningful_event_ms_p50: byPolicy((b) => p(b.meaningfulMs, 0.5)),
    frames_after_clear: speech.result.bargeIn.framesAfterClear + meaningful.result.bargeIn.framesAfterClear,
    play_path_ms_p50: p(speech.result.playPath, 0.5),
    play_path_ms_p99: p(speech.result.playPath, 0.99),
    loadavg_start: loadStart.map((x) => round1(x)),
    loadavg_end: os.loadavg().map((x) => round1(x)),
    details: {
      set: source,
      model: model.name,
      language,
      agent: "in process, @ozen/client (TypeScript), prompt streamed as 100 ms chunks at 4x real time",
      turns: t.turnGapMs.length,
      turns_unanswered: t.unanswered,
      ozen_share_split_ms_p50: {
        final_to_agent: p(t.deliveryMs, 0.5),
        agent_chunk_to_caller: p(t.playPathInTurnMs, 0.5),
      },
      play_path_samples: speech.result.playPath.length,
      barge_ins: byPolicy((b) => ({ rounds: b.rounds, measured: b.bargeInMs.length, missed: b.missed })),
      frames_after_clear: byPolicy((b) => b.framesAfterClear),
      edge_voice: { speech: edgeVoice(speech.voice), meaningful: edgeVoice(meaningful.voice) },
      cpus: os.cpus().length,
      node: process.version,
    },
  };
  const text = JSON.stringify(out, null, 2);
  if (values.json) writeFileSync(values.json, text + "\n");
  console.log(text);
}
