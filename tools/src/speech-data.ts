/**
 * Where speech comes from, in one place, for the tests, the demo, the GO check and the benchmarks:
 *
 * - the evaluation sets in the shared data folder beside the repository (`../shared/data`, on
 *   every developer machine and in CI; not redistributed with the project). `OZEN_SHARED_DATA`
 *   points elsewhere, or hides it (`none`): a clone on its own is tested that way;
 * - the project's own speech (`tools/speech/`, made by `make speech` with espeak-ng), used where
 *   the shared data is absent, so the whisper engine, failover and the GO check still run on speech.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The project's own test speech (8 kHz mu-law WAV, transcripts.json beside it). */
export const PROJECT_SPEECH_DIR = path.join(repoRoot, "tools/speech");

/** Where the shared data folder is meant to be: OZEN_SHARED_DATA, else `../shared/data`; undefined for `none`. */
function sharedDataSetting(env: NodeJS.ProcessEnv): string | undefined {
  const setting = env["OZEN_SHARED_DATA"];
  if (setting === "none") return undefined;
  return setting ? path.resolve(setting) : path.resolve(repoRoot, "../shared/data");
}

/** The shared data folder: OZEN_SHARED_DATA (`none` hides it), else `../shared/data`; undefined when absent. */
export function sharedDataDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = sharedDataSetting(env);
  return dir && existsSync(dir) ? dir : undefined;
}

/** The evaluation sets of the shared data, by folder, and what each is (its README has the sources). */
export const EVALUATION_SETS = {
  "en/asterisk-8k": "real 8 kHz telephony prompts, 60 utterances (Asterisk core sounds, CC-BY-SA-3.0)",
  "en/librivox": "real read English, 5 utterances, 16 kHz (pocketsphinx test data, LibriVox, public domain)",
  "en/misc": "real English, jfk.flac, 11 s (a public sample of Whisper projects)",
  "he/saspeech": "real Hebrew speech, 17 utterances (SASPEECH samples, OpenSLR 134; evaluation only)",
  "he/dialog": "synthetic Hebrew monologues and service calls (public TTS fixtures; evaluation only)",
  "he/long": "real Hebrew reading, asimov.mp3, 125 s (ivrit-ai/ivrit-py tests, MIT)",
  vad: "real 8 kHz multi-speaker English, aepyx_8k.wav, 169 s (Silero VAD examples, MIT)",
} as const;

export type EvaluationSetName = keyof typeof EVALUATION_SETS;

/** How to get the sets, for a skip's message. */
const HOW_TO_GET =
  "put the shared speech data at ../shared/data or point OZEN_SHARED_DATA at it (docs/benchmarks.md, evaluation sets)";

/**
 * A file or folder inside one evaluation set (`rel` = "" for the set itself), or, when it is not
 * here, the reason to give for skipping: which set, what it is, how to get it.
 */
export function evaluationPath(
  set: EvaluationSetName,
  rel = "",
  env: NodeJS.ProcessEnv = process.env,
): { readonly path: string } | { readonly skip: string } {
  const dir = sharedDataSetting(env);
  const wanted = dir && path.join(dir, set, rel);
  if (wanted && existsSync(wanted)) return { path: wanted };
  const where = wanted ? `not found at ${wanted}:` : "hidden by OZEN_SHARED_DATA=none; to run it,";
  return { skip: `evaluation set ${set} (${EVALUATION_SETS[set]}) ${where} ${HOW_TO_GET}` };
}

/** The project's own utterances: file and text (`make speech` writes them). */
export const PROJECT_SPEECH = {
  password: { file: "password.wav", text: "Please enter your password followed by the pound key." },
  directory: { file: "directory.wav", text: "If you are looking for this person, press the star key now." },
  channel: { file: "channel.wav", text: "Please enter the channel number followed by the pound key." },
} as const;

export type TestUtterance = keyof typeof PROJECT_SPEECH;

/**
 * An utterance with a name whisper cannot spell unhinted (`make speech` writes it beside the
 * others, in `hints/`): tiny.en hears "Eva Nakagawa" alone and "Aoife Nakagawa" with the phrase
 * hint, so a test can see a hint reach the decoder.
 */
export const RARE_NAME_SPEECH = {
  file: "hints/rare-name.wav",
  text: "Please transfer me to Aoife Nakagawa.",
  hint: "Aoife Nakagawa",
} as const;

/** The Asterisk prompt (en/asterisk-8k) that says what each of the project's utterances says. */
const ASTERISK_PROMPT: Readonly<Record<TestUtterance, string>> = {
  password: "agent-pass.wav", // "Please enter your password followed by the pound key."
  directory: "dir-instr.wav", // "If this is the person you are looking for press 1 now, otherwise please press star now."
  channel: "conf-getchannel.wav", // "Please enter the channel number followed by the pound key."
};

export interface SpeechFile {
  readonly path: string;
  /** What it says (its transcript), for people; tests assert their own words. */
  readonly label: string;
  /** Real speech from the shared data, or the project's espeak-ng speech. */
  readonly source: "shared" | "project";
}

/**
 * A short English prompt for the tests: the real Asterisk recording when the shared data is
 * here, else the project's own recording of the same words (or nearly: see PROJECT_SPEECH).
 */
export function testSpeech(name: TestUtterance, env: NodeJS.ProcessEnv = process.env): SpeechFile {
  const shared = evaluationPath("en/asterisk-8k", ASTERISK_PROMPT[name], env);
  if ("path" in shared)
    return { path: shared.path, label: `en/asterisk-8k/${ASTERISK_PROMPT[name]}`, source: "shared" };
  return {
    path: path.join(PROJECT_SPEECH_DIR, PROJECT_SPEECH[name].file),
    label: PROJECT_SPEECH[name].text,
    source: "project",
  };
}

/**
 * The speech a demo call or a GO check plays: Hebrew (he/dialog/hebrew_short.wav, "shalom, zo
 * habdika shel ma'arekhet hatamlul") when the shared data is here, else the project's longest
 * English prompt.
 */
export function callSpeech(env: NodeJS.ProcessEnv = process.env): SpeechFile & { readonly language: "he" | "en" } {
  const hebrew = evaluationPath("he/dialog", "hebrew_short.wav", env);
  if ("path" in hebrew)
    return { path: hebrew.path, label: "he/dialog/hebrew_short.wav", source: "shared", language: "he" };
  return { ...testSpeech("directory", env), language: "en" };
}
