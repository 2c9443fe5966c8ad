/**
 * ozen demo: the whole local stack on this machine with nothing to configure: the edge on
 * workerd, the runner beside it with the whisper worker, and one simulated Twilio call with real
 * speech. Prints each partial as the edge receives it, with its latency, then the finals.
 *
 *   ozen demo [--audio FILE] [--language he|en] [--model M] [--engine whisper|null]
 *
 * Speech: `he/dialog/hebrew_short.wav` from ../shared/data (Hebrew, with the largest multilingual
 * model here); when that folder is absent, the project's own English prompts (tools/speech, with
 * tiny.en), one after another.
 * `--engine null` keeps the plumbing-only demo: the runner takes the audio and says nothing.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { encodeMulaw } from "@ozen/shared";
import { nullEngine } from "@ozen/stt-runner";
import { fail, parseCommand } from "./args.js";
import { loadAudio8k } from "./audio.js";
import type { LoadedAudio } from "./audio.js";
import { DEMO } from "./commands.js";
import { startLocalStack } from "./local-stack.js";
import { newIdentity, placeCall } from "./simulator.js";
import { PROJECT_SPEECH, PROJECT_SPEECH_DIR, callSpeech } from "./speech-data.js";
import { bestMultilingual, findModel, listModels, workerPython } from "./whisper-env.js";
import type { ModelInfo } from "./whisper-env.js";

/** The pause between the project's prompts when they make one call. */
const PAUSE_MS = 1000;
/** Silence after the speech, as a caller pauses: the last final comes from end of speech, not the hang-up. */
const TAIL_S = 2;

interface DemoSpeech {
  readonly audio: LoadedAudio;
  readonly label: string;
  readonly language: "he" | "en";
}

/** The project's own prompts as one call, each followed by a pause. */
function projectCall(): LoadedAudio {
  const parts = Object.values(PROJECT_SPEECH).map((u) => loadAudio8k(path.join(PROJECT_SPEECH_DIR, u.file)).pcm);
  const pause = (PAUSE_MS * 8000) / 1000;
  const pcm = new Int16Array(parts.reduce((n, p) => n + p.length + pause, 0));
  let at = 0;
  for (const p of parts) {
    pcm.set(p, at);
    at += p.length + pause;
  }
  return {
    sampleRateHz: 8000,
    pcm,
    mulaw: encodeMulaw(pcm),
    sourceRateHz: 8000,
    sourceChannels: 1,
    durationMs: (pcm.length * 1000) / 8000,
  };
}

/** The speech to call with: --audio, the shared data's Hebrew, or the project's English. */
function demoSpeech(audioArg: string | undefined, languageArg: string | undefined): DemoSpeech {
  const lang = (p: string): "he" | "en" =>
    languageArg === "he" || languageArg === "en" ? languageArg : /(^|\/)he\//.test(p) ? "he" : "en";
  if (audioArg) {
    if (!existsSync(audioArg)) fail(`no audio at ${audioArg}`);
    return { audio: loadAudio8k(audioArg), label: path.basename(audioArg), language: lang(audioArg) };
  }
  const speech = callSpeech();
  if (speech.source === "shared") return { audio: loadAudio8k(speech.path), label: speech.label, language: "he" };
  return {
    audio: projectCall(),
    label: "the project's English prompts (tools/speech: espeak-ng; ../shared/data is absent)",
    language: "en",
  };
}

function pickModel(requested: string | undefined, language: "he" | "en"): ModelInfo {
  const listed = listModels();
  if (!listed.ok) fail(listed.message);
  if (requested) {
    const m = findModel(listed.models, requested);
    if ("error" in m) fail(m.error);
    return m;
  }
  const m =
    language === "en"
      ? (listed.models.find((x) => x.name === "tiny.en") ?? bestMultilingual(listed.models))
      : bestMultilingual(listed.models);
  if (!m) fail(`no ${language === "he" ? "multilingual " : ""}whisper model here: run \`make install\``);
  return m;
}

export async function demo(argv: string[]): Promise<void> {
  const { values } = parseCommand(DEMO, argv);
  const engine = values.engine ?? (workerPython() ? "whisper" : "null");
  if (engine !== "whisper" && engine !== "null") fail(`--engine is whisper or null, not ${JSON.stringify(engine)}`);
  if (engine === "null" && !values.engine) {
    console.log("the whisper worker is not installed (make install): the runner takes the audio and says nothing");
  }
  const speech = demoSpeech(values.audio, values.language);
  if (engine === "null") return nullDemo(speech);
  return whisperDemo(speech, pickModel(values.model, speech.language));
}

/** A segment of text for a terminal line (transcripts are the user's own audio here). */
function show(text: string): string {
  return text.length > 110 ? `…${text.slice(-110)}` : text;
}

async function whisperDemo(speech: DemoSpeech, model: ModelInfo): Promise<void> {
  console.log(`starting the runner and the whisper worker (${model.name}, language ${speech.language}) ...`);
  const stack = await startLocalStack({
    runner: {
      process: "whisper",
      env: { WHISPER_MODEL: model.path, WHISPER_LANGUAGE: speech.language, HF_HUB_OFFLINE: "1" },
    },
  });
  try {
    console.log(`edge on workerd at ${stack.url}, runner (whisper, ${model.name}) on port ${stack.runnerPort}`);
    const audioS = speech.audio.durationMs / 1000;
    console.log(`calling with ${speech.label} (${audioS.toFixed(1)} s, 8 kHz mu-law), real time ...\n`);
    const mulaw = new Uint8Array(speech.audio.mulaw.length + TAIL_S * 8000).fill(0xff);
    mulaw.set(speech.audio.mulaw);
    const identity = newIdentity();
    const sentAt: number[] = [];
    const printed = new Set<string>();
    let t0 = 0;
    type Ev = { type?: string; text?: string; audioEndMs?: number; wallMs?: number; utteranceId?: string };
    const finals: Ev[] = [];
    const poll = async () => {
      const res = await fetch(`${stack.url}/calls/${identity.callSid}/events`, {
        headers: { Authorization: `Bearer ${stack.apiToken}` },
      });
      if (!res.ok) return;
      for (const e of ((await res.json()) as { events?: Ev[] }).events ?? []) {
        const key = JSON.stringify(e);
        if (printed.has(key) || (e.type !== "partial" && e.type !== "final")) continue;
        printed.add(key);
        // latency: the runner emitted the text this long after the caller's audio up to its end was
        // sent (the runner runs here, on this clock)
        const frame = Math.min(sentAt.length - 1, Math.floor((e.audioEndMs ?? 0) / 20));
        const latency =
          frame >= 0 && e.wallMs ? `${String(Math.round(e.wallMs - sentAt[frame]!)).padStart(5)} ms` : "    ?";
        const at = ((Date.now() - t0) / 1000).toFixed(1).padStart(5);
        if (e.type === "final") finals.push(e);
        console.log(`${at} s  ${e.type === "final" ? "FINAL  " : "partial"}  ${latency}  ${show(e.text ?? "")}`);
      }
    };
    const timer = setInterval(() => void poll().catch(() => {}), 150);
    t0 = Date.now();
    try {
      await placeCall({
        edgeUrl: stack.url,
        publicUrl: stack.publicUrl,
        authToken: stack.authToken,
        audio: mulaw,
        identity,
        onFrameSent: () => sentAt.push(Date.now()),
      });
      // the runner finishes the last utterance after the hang-up
      for (let i = 0; i < 20 && finals.length === 0; i++) await new Promise((r) => setTimeout(r, 250));
      await new Promise((r) => setTimeout(r, 1000));
      await poll();
    } finally {
      clearInterval(timer);
    }
    console.log("\nfinals:");
    for (const f of finals) console.log(`  ${f.utteranceId?.split(":").pop()}  ${f.text}`);
    if (finals.length === 0) console.log("  (none: the worker found no speech)");
    console.log("\n(latency: when the runner emitted the text, minus when the caller's audio up to its end was sent)");
  } finally {
    await stack.close();
  }
}

/** The plumbing demo: the runner takes the audio and says nothing (no worker needed). */
async function nullDemo(speech: DemoSpeech): Promise<void> {
  const stack = await startLocalStack({ runner: { engine: nullEngine }, vars: { INGEST_ACK: "block" } });
  console.log(`edge on workerd at ${stack.url}, runner (null engine) on port ${stack.runnerPort}`);
  console.log(
    `calling with ${speech.label} (${(speech.audio.durationMs / 1000).toFixed(1)} s, 8 kHz mu-law), real time...`,
  );
  const t0 = performance.now();
  let acks = 0;
  const result = await placeCall({
    edgeUrl: stack.url,
    publicUrl: stack.publicUrl,
    authToken: stack.authToken,
    audio: speech.audio.mulaw,
    onMessage: (m) => {
      const e = m as { event?: string; mark?: { name?: string } };
      if (e.event === "mark" && e.mark?.name?.startsWith("ozen-ack:")) {
        if (++acks % 10 === 0)
          console.log(
            `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${acks} blocks of 100 ms relayed`,
          );
        return;
      }
      console.log(
        `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  edge -> caller: ${e.event}${e.mark ? ` ${e.mark.name}` : ""}`,
      );
    },
  });
  const stats = await (
    await fetch(`${stack.url}/calls/${result.callSid}/stats`, {
      headers: { Authorization: `Bearer ${stack.apiToken}` },
    })
  ).json();
  console.log(
    `greeting heard ${result.greetingMs?.toFixed(1)} ms after start; runner got ${stack.relay!.counters.blocks} blocks`,
  );
  console.log("the call's record at the edge:");
  console.log(JSON.stringify(stats, null, 2));
  await stack.close();
}
