/**
 * docs/settings.md from the declarations themselves, so the page cannot drift from the code:
 * one section per deployable, one list per area: each setting's name and description, then its
 * default and what is allowed (a list, not a table: a table is as wide as its longest cells).
 */
import type { Setting, SettingsSpec } from "./settings.js";

/** Settings that belong together (a subsystem), in the order the docs list them. */
export interface SettingsArea {
  readonly title: string;
  /** A sentence or two above the table: when these settings matter. */
  readonly intro?: string;
  readonly settings: SettingsSpec;
}

/** Everything one deployable (the edge Worker, the runner) reads. */
export interface SettingsDeployable {
  readonly title: string;
  /** Where its settings are set (wrangler vars, the container's environment, ...). */
  readonly intro?: string;
  readonly areas: readonly SettingsArea[];
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

/** The words of `text`, a code span with spaces in it counting as one. */
function words(text: string): string[] {
  const out: string[] = [];
  let word = "";
  let inCode = false;
  for (const ch of oneLine(text)) {
    if (ch === "`") inCode = !inCode;
    if (ch === " " && !inCode) {
      if (word) out.push(word);
      word = "";
    } else word += ch;
  }
  if (word) out.push(word);
  return out;
}

/** A paragraph broken into lines of at most `width` characters where it can be (Markdown joins them again). */
function wrap(text: string, width = 100): string {
  const lines: string[] = [];
  let line = "";
  for (const word of words(text)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join("\n");
}

/** "default: `100`", or "required ..." for a setting that has none. */
function defaultOf(s: Setting<unknown>): string {
  const text = oneLine(s.defaultText);
  const required = /^\((required.*)\)$/.exec(text);
  return required ? required[1]! : `default: ${text}`;
}

/** One setting: its name and description, then its default and what is allowed (a hard line break between). */
function entry(name: string, s: Setting<unknown>): string[] {
  return [`- **\`${name}\`**: ${oneLine(s.description)}\\`, `  ${defaultOf(s)}; allowed: ${oneLine(s.allowedText)}`];
}

/**
 * Every declared setting of `deployables` as Markdown. A variable declared in two areas with the
 * same declaration (one setting read by two subsystems) is listed once, where it first appears;
 * two different declarations of one name throw: a variable has one meaning.
 */
export function settingsMarkdown(o: {
  readonly title: string;
  readonly intro: string;
  readonly deployables: readonly SettingsDeployable[];
}): string {
  const lines = [`# ${o.title}`, "", wrap(o.intro), ""];
  for (const d of o.deployables) {
    const seen = new Map<string, Setting<unknown>>();
    lines.push(`## ${d.title}`, "");
    if (d.intro) lines.push(wrap(d.intro), "");
    for (const area of d.areas) {
      const entries: string[] = [];
      for (const [name, s] of Object.entries(area.settings)) {
        const before = seen.get(name);
        if (before !== undefined && before !== s) throw new Error(`${name} is declared twice in ${d.title}`);
        if (before) continue;
        seen.set(name, s);
        entries.push(...entry(name, s));
      }
      if (entries.length === 0) continue;
      lines.push(`### ${area.title}`, "");
      if (area.intro) lines.push(wrap(area.intro), "");
      lines.push(...entries, "");
    }
  }
  return lines.join("\n");
}

/** Every variable `deployables` declare, each once. */
export function declaredSettingNames(deployables: readonly SettingsDeployable[]): Set<string> {
  const names = new Set<string>();
  for (const d of deployables) for (const a of d.areas) for (const name of Object.keys(a.settings)) names.add(name);
  return names;
}
