/**
 * Writes tools/speech/: the project's own test speech, three short English prompts spoken by
 * espeak-ng (Debian's `espeak-ng`) and kept as Twilio delivers a call, 8 kHz mu-law WAV, with
 * their texts in `transcripts.json` (the format `ozen bench stt --set` reads). The tests, the demo
 * and the GO check use them when `../shared/data` is not beside the repository.
 *
 *   make speech            (node --import tsx tools/src/make-speech.ts [OUT_DIR])
 *
 * The voices, rates and texts were chosen (espeak-ng 1.51, Debian 12) so that the whisper worker
 * with tiny.en hears every word the tests assert in this 8 kHz mu-law audio: alone, after another
 * utterance, replayed with earlier finals as its prompt, at once and at real-time pace, and still
 * at a neighbouring rate. The texts are the Asterisk prompts' own words, but for one: "If you are
 * looking for this person, press the star key now" (tiny.en mishears espeak-ng's "press star
 * now"). Another espeak-ng version speaks slightly differently: run the whisper tests after
 * regenerating.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeMulaw } from "@ozen/shared";
import { loadAudio8k } from "./audio.js";
import { levelDbfs } from "./check/onset.js";
import { PROJECT_SPEECH, PROJECT_SPEECH_DIR, RARE_NAME_SPEECH } from "./speech-data.js";
import type { TestUtterance } from "./speech-data.js";

/** espeak-ng's voice and rate (words per minute) for each utterance. */
const SPOKEN: Readonly<Record<TestUtterance, { readonly voice: string; readonly wordsPerMinute: number }>> = {
  password: { voice: "en-us+f2", wordsPerMinute: 160 },
  directory: { voice: "en-us+f3", wordsPerMinute: 160 },
  channel: { voice: "en-us+f2", wordsPerMinute: 160 },
};
const RATE_HZ = 8000;
const FRAME = 160; // 20 ms
/** Silence kept before the first and after the last frame louder than this. */
const PAD_MS = 250;
const SPEECH_DBFS = -40;

/** The speech with PAD_MS of silence on each side: espeak-ng's own lead-in and tail vary with the text. */
function trimmed(pcm: Int16Array): Int16Array {
  let first = -1;
  let last = -1;
  for (let i = 0; i + FRAME <= pcm.length; i += FRAME) {
    if (levelDbfs(pcm.subarray(i, i + FRAME)) >= SPEECH_DBFS) {
      if (first < 0) first = i;
      last = i + FRAME;
    }
  }
  if (first < 0) throw new Error("espeak-ng produced no speech");
  const pad = (PAD_MS * RATE_HZ) / 1000;
  const out = new Int16Array(pad + (last - first) + pad);
  out.set(pcm.subarray(first, last), pad);
  return out;
}

/** A WAV file of 8 kHz mono mu-law (format tag 7), as `readWav` and common players read it. */
function mulawWav(mulaw: Uint8Array): Uint8Array {
  const header = Buffer.alloc(58);
  header.write("RIFF", 0);
  header.writeUInt32LE(50 + mulaw.length, 4);
  header.write("WAVE", 8);
  header.write("fmt ", 12);
  header.writeUInt32LE(18, 16);
  header.writeUInt16LE(7, 20); // WAVE_FORMAT_MULAW
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(RATE_HZ, 24);
  header.writeUInt32LE(RATE_HZ, 28); // bytes per second
  header.writeUInt16LE(1, 32); // block align
  header.writeUInt16LE(8, 34); // bits per sample
  header.writeUInt16LE(0, 36); // no extension
  header.write("fact", 38); // required for non-PCM formats: the sample count
  header.writeUInt32LE(4, 42);
  header.writeUInt32LE(mulaw.length, 46);
  header.write("data", 50);
  header.writeUInt32LE(mulaw.length, 54);
  return Buffer.concat([header, mulaw]);
}

/** Speaks `text` with espeak-ng into `file` under `out`, trimmed and kept as 8 kHz mu-law. */
function speak(tmp: string, file: string, text: string, spoken: { voice: string; wordsPerMinute: number }): void {
  const wav = path.join(tmp, path.basename(file));
  const r = spawnSync("espeak-ng", ["-v", spoken.voice, "-s", String(spoken.wordsPerMinute), "-w", wav, text], {
    encoding: "utf8",
  });
  if (r.error || r.status !== 0) {
    throw new Error(`espeak-ng ${r.error ? "is not installed (apt-get install espeak-ng)" : `failed: ${r.stderr}`}`);
  }
  const pcm = trimmed(loadAudio8k(wav).pcm);
  mkdirSync(path.dirname(path.join(out, file)), { recursive: true });
  writeFileSync(path.join(out, file), mulawWav(encodeMulaw(pcm)));
  console.log(`wrote ${path.join(out, file)}: ${(pcm.length / RATE_HZ).toFixed(2)} s  "${text}"`);
}

const out = process.argv[2] ?? PROJECT_SPEECH_DIR;
mkdirSync(out, { recursive: true });
const tmp = mkdtempSync(path.join(os.tmpdir(), "ozen-speech-"));
try {
  for (const [name, u] of Object.entries(PROJECT_SPEECH) as [TestUtterance, (typeof PROJECT_SPEECH)[TestUtterance]][]) {
    speak(tmp, u.file, u.text, SPOKEN[name]);
  }
  // not in transcripts.json: it is the phrase-hint test's utterance, not part of the WER set
  speak(tmp, RARE_NAME_SPEECH.file, RARE_NAME_SPEECH.text, { voice: "en-us+f2", wordsPerMinute: 160 });
  const transcripts = Object.values(PROJECT_SPEECH).map((u) => ({ file: u.file, text: u.text }));
  writeFileSync(path.join(out, "transcripts.json"), JSON.stringify(transcripts, null, 2) + "\n");
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
