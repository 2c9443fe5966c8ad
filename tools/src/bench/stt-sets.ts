/**
 * The evaluation sets of `../shared/data` as (audio file, reference text) pairs, whatever way each
 * set writes its references: `transcripts.json` (`[{file, text}]`), a Sphinx `transcription`
 * file (`<s> text </s> (fileid)`), or `NAME.expected.txt` / `NAME.txt` beside `NAME.wav`.
 *
 * A set's language is read from the set: a `language` field on the entries of
 * `transcripts.json`, or a `language: he` line in the set's README (`README.md`, `README.txt`,
 * `README`); a set that says neither is Hebrew under a `he/` folder, else English.
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
  /** Audio files that have no reference (left out, and reported). */
  readonly unreferenced: string[];
  /** Where the language came from. */
  readonly languageFrom: "option" | "transcripts.json" | "README" | "folder";
}

const LANGUAGES: readonly WerLanguage[] = ["he", "en"];
const README_LANGUAGE = /^[\s*#>-]*language\s*\**\s*[:=]\s*\**\s*([a-z]{2,3})\b/im;

function asLanguage(value: string, where: string): WerLanguage {
  const v = value.toLowerCase() === "iw" ? "he" : value.toLowerCase();
  if (!(LANGUAGES as readonly string[]).includes(v)) {
    throw new Error(`${where} says language ${JSON.stringify(value)}; the benchmark knows ${LANGUAGES.join(", ")}`);
  }
  return v as WerLanguage;
}

/** The language the set itself states (transcripts.json, then its README), if any. */
function statedLanguage(
  dir: string,
  entries: readonly { language?: unknown }[],
): { language: WerLanguage; from: "transcripts.json" | "README" } | undefined {
  const stated = new Set(entries.map((e) => e.language).filter((l): l is string => typeof l === "string"));
  if (stated.size > 1) throw new Error(`${dir}/transcripts.json mixes languages: ${[...stated].join(", ")}`);
  if (stated.size === 1)
    return { language: asLanguage([...stated][0]!, `${dir}/transcripts.json`), from: "transcripts.json" };
  for (const readme of ["README.md", "README.txt", "README"]) {
    const file = path.join(dir, readme);
    if (!existsSync(file)) continue;
    const m = README_LANGUAGE.exec(readFileSync(file, "utf8"));
    if (m) return { language: asLanguage(m[1]!, file), from: "README" };
  }
  return undefined;
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
  let entries: { file?: unknown; text?: unknown; language?: unknown }[] = [];
  if (existsSync(json)) {
    const list = JSON.parse(readFileSync(json, "utf8")) as unknown;
    if (!Array.isArray(list)) throw new Error(`${json} is not a JSON array`);
    entries = list as typeof entries;
    for (const e of entries) {
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
  const stated = statedLanguage(abs, entries);
  if (language) return { name, dir: abs, language, items, unreferenced, languageFrom: "option" };
  if (stated) return { name, dir: abs, language: stated.language, items, unreferenced, languageFrom: stated.from };
  const lang: WerLanguage = /(^|\/)he\//.test(name + "/") ? "he" : "en";
  return { name, dir: abs, language: lang, items, unreferenced, languageFrom: "folder" };
}
