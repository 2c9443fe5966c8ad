/**
 * The evaluation sets of `../shared/data` as (audio file, reference text) pairs, whatever way each
 * set writes its references: `transcripts.json` (`[{file, text}]`), a Sphinx `transcription`
 * file (`<s> text </s> (fileid)`), or `NAME.expected.txt` / `NAME.txt` beside `NAME.wav`.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { WerLanguage } from "@ozen/shared";

export interface SetItem {
  /** File name without directory, e.g. `agent-pass.wav`. */
  readonly id: string;
  readonly audioPath: string;
  readonly reference: string;
}

export interface EvalSet {
  /** `he/saspeech`: the last two parts of the directory. */
  readonly name: string;
  readonly dir: string;
  readonly language: WerLanguage;
  readonly items: SetItem[];
  /** Audio files that have no reference (left out). */
  readonly unreferenced: string[];
}

// Speaker labels of the dialog references (`דובר 1:`, `Speaker 2:`) are not spoken.
const SPEAKER_LABEL = /^\s*(?:דובר|speaker)\s*\d+\s*:\s*/gimu;

/** Reference text as spoken: speaker labels removed. */
export function spokenReference(text: string): string {
  return text.replace(SPEAKER_LABEL, "").trim();
}

/** Reads a set directory; throws an Error saying what is missing. */
export function loadSet(dir: string, language?: WerLanguage): EvalSet {
  if (!existsSync(dir)) throw new Error(`no set at ${dir}`);
  const abs = path.resolve(dir);
  const name = abs.split(path.sep).slice(-2).join("/");
  const refs = new Map<string, string>();
  const json = path.join(abs, "transcripts.json");
  if (existsSync(json)) {
    const list = JSON.parse(readFileSync(json, "utf8")) as unknown;
    if (!Array.isArray(list)) throw new Error(`${json} is not a JSON array`);
    for (const e of list as { file?: unknown; text?: unknown }[]) {
      if (typeof e.file === "string" && typeof e.text === "string") refs.set(e.file, e.text);
    }
  }
  const sphinx = path.join(abs, "transcription");
  if (existsSync(sphinx)) {
    for (const line of readFileSync(sphinx, "utf8").split("\n")) {
      const m = /^(.*)\(([^()]+)\)\s*$/.exec(line.trim());
      if (m) refs.set(`${m[2]!.trim()}.wav`, m[1]!.replace(/<\/?s>/g, " ").trim());
    }
  }
  const wavs = readdirSync(abs)
    .filter((f) => f.toLowerCase().endsWith(".wav"))
    .sort();
  const items: SetItem[] = [];
  const unreferenced: string[] = [];
  for (const f of wavs) {
    let ref = refs.get(f);
    const stem = f.slice(0, -4);
    for (const side of [`${stem}.expected.txt`, `${stem}.txt`]) {
      if (ref === undefined && existsSync(path.join(abs, side))) ref = readFileSync(path.join(abs, side), "utf8");
    }
    if (ref === undefined) unreferenced.push(f);
    else items.push({ id: f, audioPath: path.join(abs, f), reference: spokenReference(ref) });
  }
  const lang: WerLanguage = language ?? (/(^|\/)he\//.test(name + "/") ? "he" : "en");
  return { name, dir: abs, language: lang, items, unreferenced };
}
