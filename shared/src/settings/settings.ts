/**
 * Settings read from an environment (a Worker's vars and secrets, a process's environment): each
 * declared once with its name, kind, default, bounds or allowed values and a one-line
 * description; `readSettings` turns an env record into typed values or throws one `SettingError`
 * that names the variable, the value and what is allowed. The same declarations generate
 * docs/settings.md (`settingsMarkdown`). Pure: no I/O, no clock.
 *
 * Adding a setting is one declaration in its area's table (e.g. `OZEN_MAX_CALLS: int({ ... })`);
 * the loader that reads the table then has it, typed, and the docs list it.
 */

/** What a setting holds, as docs/settings.md names it. */
export type SettingKind = "string" | "int" | "number" | "choice" | "bool" | "list" | "url" | "secret";

/** A raw environment: a Worker's `env` (vars are strings, bindings are not read) or `process.env`. */
export type SettingsEnv = Readonly<Record<string, unknown>>;

/** What is wrong with one setting; `SettingError`'s message is built from it. */
export interface SettingProblem {
  /** The variable, or a part of one (`WEBHOOK_ACCOUNTS.AC123 url`). */
  readonly setting: string;
  /** The raw value; undefined when the variable is not set. */
  readonly value: unknown;
  /** What is allowed, for a person to act on (`a whole number from 20 to 250`). */
  readonly expected: string;
  /** The value is a secret: the message gives its length, never its text. */
  readonly secret?: boolean;
  /** Says what is wrong when "is <value>" does not (`names "finals"`, `is not JSON`). */
  readonly problem?: string;
}

/** A setting is missing, malformed or out of range. The message names it, its value and what is allowed. */
export class SettingError extends Error {
  override readonly name = "SettingError";
  /** The variable (or part of one) that is wrong. */
  readonly setting: string;

  constructor(p: SettingProblem) {
    super(`${p.setting} ${p.problem ?? `is ${shown(p.value, p.secret ?? false)}`}, expected ${p.expected}`);
    this.setting = p.setting;
  }
}

function shown(value: unknown, secret: boolean): string {
  if (value === undefined) return "not set";
  if (secret) return typeof value === "string" ? `a secret of ${value.length} characters` : "a secret that is not text";
  return JSON.stringify(value) ?? String(value);
}

/** A bound that is another setting's value, read before this one in the same table. */
export interface SettingRef {
  readonly setting: string;
}

type Bound = number | SettingRef;

/** One declared setting: how to read it and how the docs show it. */
export interface Setting<T> {
  readonly kind: SettingKind;
  /** One line for docs/settings.md: what it does, with its unit. */
  readonly description: string;
  /** The default as the docs show it: "`100`", "(required)", "(unset)", or a sentence. */
  readonly defaultText: string;
  /** What is allowed, as the docs show it (Markdown). */
  readonly allowedText: string;
  /** What is allowed, as a message says it (`a whole number from 20 to 250`). */
  readonly expected: string;
  readonly secret: boolean;
  /**
   * The value for `raw` (undefined: not set, or empty where empty means unset). `earlier` gives
   * the values of settings declared before this one in its table (bounds that name them).
   */
  parse(name: string, raw: string | undefined, earlier: (name: string) => unknown): T;
}

/** A table of settings, keyed by variable name, read in declaration order. */
export type SettingsSpec = Readonly<Record<string, Setting<unknown>>>;

/** The typed values of a table. */
export type SettingsOf<S extends SettingsSpec> = { readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/**
 * Reads every setting of `spec` from `env`, in declaration order. Unset and empty variables take
 * their default (empty is a value of its own only where a declaration says `emptyIsValue`).
 * Throws `SettingError` for the first one that is wrong.
 */
export function readSettings<S extends SettingsSpec>(spec: S, env: SettingsEnv): SettingsOf<S> {
  const out: Record<string, unknown> = {};
  const earlier = (name: string): unknown => {
    if (!(name in out)) throw new Error(`setting ${name} is referenced before it is declared`);
    return out[name];
  };
  for (const [name, setting] of Object.entries(spec)) {
    const raw = env[name];
    if (raw !== undefined && typeof raw !== "string") {
      throw new SettingError({ setting: name, value: raw, expected: "text", secret: setting.secret });
    }
    out[name] = setting.parse(name, raw, earlier);
  }
  return out as SettingsOf<S>;
}

// ---- declarations ----

interface Common {
  /** One line: what the setting does, with its unit. */
  readonly description: string;
  /** Required: unset is a `SettingError`. */
  readonly required?: boolean;
  /** The empty string is a value of its own (e.g. "no hints") instead of meaning unset. */
  readonly emptyIsValue?: boolean;
  /** How the docs show the default when the declared one does not say it (a default that depends on another setting). */
  readonly defaultText?: string;
}

/** The value type of a declaration: optional unless it has a default or is required. */
type ValueFor<O, T> = O extends { readonly default: unknown }
  ? T
  : O extends { readonly required: true }
    ? T
    : T | undefined;

const code = (v: string): string => "`" + v + "`";

function defaultTextOf(o: Common & { readonly default?: unknown }, render: (v: never) => string): string {
  if (o.defaultText !== undefined) return o.defaultText;
  if (o.default !== undefined) return render(o.default as never);
  return o.required ? "(required)" : "(unset)";
}

/** The shared part of every declaration: unset, empty, default and required. */
function makeSetting<T>(
  kind: SettingKind,
  o: Common & { readonly default?: T },
  texts: { readonly defaultText: string; readonly allowedText: string; readonly expected: string },
  convert: (name: string, raw: string, earlier: (name: string) => unknown) => T,
  secret = false,
): Setting<T | undefined> {
  return {
    kind,
    description: o.description,
    defaultText: texts.defaultText,
    allowedText: texts.allowedText,
    expected: texts.expected,
    secret,
    parse(name, raw, earlier) {
      if (raw === undefined || (raw === "" && !o.emptyIsValue)) {
        if (o.default !== undefined) return o.default;
        if (o.required) throw new SettingError({ setting: name, value: undefined, expected: texts.expected });
        return undefined;
      }
      return convert(name, raw, earlier);
    },
  };
}

function boundOf(b: Bound, earlier: (name: string) => unknown): number {
  return typeof b === "number" ? b : (earlier(b.setting) as number);
}

/** A bound in a message (the named setting's value and its name) or in the docs (the name, as code). */
function boundText(b: Bound, earlier?: (name: string) => unknown): string {
  if (typeof b === "number") return String(b);
  return earlier ? `${String(earlier(b.setting))} (${b.setting})` : code(b.setting);
}

function numeric(kind: "int" | "number") {
  const noun = kind === "int" ? "a whole number" : "a number";
  return <const O extends Common & { readonly default?: number; readonly min: Bound; readonly max: Bound }>(
    o: O,
  ): Setting<ValueFor<O, number>> => {
    const range = (earlier?: (name: string) => unknown) =>
      `${noun} from ${boundText(o.min, earlier)} to ${boundText(o.max, earlier)}`;
    return makeSetting<number>(
      kind,
      o,
      {
        defaultText: defaultTextOf(o, (v: number) => code(String(v))),
        allowedText: range(),
        expected: range().replace(/`/g, ""),
      },
      (name, raw, earlier) => {
        const v = Number(raw);
        const ok = kind === "int" ? Number.isInteger(v) : Number.isFinite(v);
        if (!ok || v < boundOf(o.min, earlier) || v > boundOf(o.max, earlier)) {
          throw new SettingError({ setting: name, value: raw, expected: range(earlier) });
        }
        return v;
      },
    ) as Setting<ValueFor<O, number>>;
  };
}

/** A whole number from `min` to `max` (either may name an earlier setting: `{ setting: "X_MIN_MS" }`). */
const int = numeric("int");

/** A finite number from `min` to `max` (either may name an earlier setting). */
const number = numeric("number");

/** Text, optionally matching `pattern` (`expected` says what in words). */
function string<
  const O extends Common & { readonly default?: string; readonly pattern?: RegExp; readonly expected?: string },
>(o: O): Setting<ValueFor<O, string>> {
  const expected = o.expected ?? "text";
  return makeSetting<string>(
    "string",
    o,
    {
      defaultText: defaultTextOf(o, (v: string) => (v === "" ? '`""`' : code(v))),
      allowedText: o.expected ?? "text",
      expected,
    },
    (name, raw) => {
      if (o.pattern && !o.pattern.test(raw)) throw new SettingError({ setting: name, value: raw, expected });
      return raw;
    },
  ) as Setting<ValueFor<O, string>>;
}

/** A secret (token, signing key): never shown in a message or the docs; at least `minLength` characters. */
function secret<const O extends Common & { readonly minLength?: number }>(o: O): Setting<ValueFor<O, string>> {
  const expected = o.minLength ? `a secret of at least ${o.minLength} characters` : "a secret";
  return makeSetting<string>(
    "secret",
    o,
    { defaultText: defaultTextOf(o, () => "(secret)"), allowedText: expected, expected },
    (name, raw) => {
      if (o.minLength && raw.length < o.minLength) {
        throw new SettingError({ setting: name, value: raw, expected, secret: true });
      }
      return raw;
    },
    true,
  ) as Setting<ValueFor<O, string>>;
}

/** One of `values`. */
function choice<
  const V extends readonly string[],
  const O extends Common & { readonly values: V; readonly default?: V[number] },
>(o: O): Setting<ValueFor<O, O["values"][number]>> {
  const expected = `one of ${o.values.join(", ")}`;
  return makeSetting<string>(
    "choice",
    o,
    { defaultText: defaultTextOf(o, code), allowedText: o.values.map(code).join(", "), expected },
    (name, raw) => {
      if (!o.values.includes(raw)) throw new SettingError({ setting: name, value: raw, expected });
      return raw;
    },
  ) as Setting<ValueFor<O, O["values"][number]>>;
}

/** On or off, spelled `words` (`["on", "off"]` unless declared otherwise, e.g. `["true", "false"]`). */
function bool<const O extends Common & { readonly default?: boolean; readonly words?: readonly [string, string] }>(
  o: O,
): Setting<ValueFor<O, boolean>> {
  const [yes, no] = o.words ?? ["on", "off"];
  const expected = `${yes} or ${no}`;
  return makeSetting<boolean>(
    "bool",
    o,
    {
      defaultText: defaultTextOf(o, (v: boolean) => code(v ? yes : no)),
      allowedText: `${code(yes)}, ${code(no)}`,
      expected,
    },
    (name, raw) => {
      if (raw === yes) return true;
      if (raw === no) return false;
      throw new SettingError({ setting: name, value: raw, expected });
    },
  ) as Setting<ValueFor<O, boolean>>;
}

/**
 * A comma- or bar-separated list, items trimmed, empty ones dropped: how phrase hints are written,
 * in a setting or a call's `<Parameter>`.
 */
export function splitList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(/[,|]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const SEPARATORS = {
  comma: { split: /,/, text: "comma-separated" },
  "comma-or-bar": { split: /[,|]/, text: "comma- or bar-separated" },
  space: { split: /\s+/, text: "space-separated" },
} as const;

/**
 * A list, split on `separator` (default comma), items trimmed; empty items are dropped unless
 * `keepEmptyItems` (an empty item can mean something, e.g. "the service's default model").
 * With `of`, every item must be one of those.
 */
function list<
  const O extends Common & {
    readonly default?: readonly string[];
    readonly separator?: keyof typeof SEPARATORS;
    readonly keepEmptyItems?: boolean;
    readonly of?: readonly string[];
  },
>(o: O): Setting<ValueFor<O, O extends { readonly of: readonly (infer I)[] } ? readonly I[] : readonly string[]>> {
  const sep = SEPARATORS[o.separator ?? "comma"];
  const expected = o.of ? `a ${sep.text} list of ${o.of.join(", ")}` : `a ${sep.text} list`;
  const joiner = o.separator === "space" ? " " : ",";
  return makeSetting<readonly string[]>(
    "list",
    o,
    {
      defaultText: defaultTextOf(o, (v: readonly string[]) => (v.length === 0 ? "(none)" : code(v.join(joiner)))),
      allowedText: o.of ? `${sep.text}, of ${o.of.map(code).join(", ")}` : sep.text,
      expected,
    },
    (name, raw) => {
      const items = raw.split(sep.split).map((s) => s.trim());
      const kept = o.keepEmptyItems ? items : items.filter((s) => s.length > 0);
      const unknown = o.of ? kept.find((s) => !o.of!.includes(s)) : undefined;
      if (unknown !== undefined) {
        throw new SettingError({
          setting: name,
          value: raw,
          problem: `is ${JSON.stringify(raw)}, which names ${JSON.stringify(unknown)}`,
          expected,
        });
      }
      return kept;
    },
  ) as Setting<ValueFor<O, O extends { readonly of: readonly (infer I)[] } ? readonly I[] : readonly string[]>>;
}

/**
 * A URL with one of `schemes` and a host; with `originOnly`, nothing after the host and port
 * (trailing slashes are dropped first).
 */
function url<
  const O extends Common & {
    readonly default?: string;
    readonly schemes: readonly string[];
    readonly originOnly?: boolean;
  },
>(o: O): Setting<ValueFor<O, string>> {
  const schemes = o.schemes.map((s) => `${s}://`);
  const expected = o.originOnly
    ? `${schemes.map((s) => `${s}host[:port]`).join(" or ")} with no path`
    : `a URL starting ${schemes.slice(0, -1).join(", ")}${schemes.length > 1 ? " or " : ""}${schemes.at(-1)}`;
  const pattern = new RegExp(`^(${o.schemes.join("|")})://[^/?#]+${o.originOnly ? "$" : ""}`);
  return makeSetting<string>(
    "url",
    o,
    {
      defaultText: defaultTextOf(o, code),
      allowedText: o.originOnly
        ? `${schemes.map(code).join(", ")} + host[:port], no path`
        : schemes.map(code).join(", "),
      expected,
    },
    (name, raw) => {
      const v = o.originOnly ? raw.replace(/\/+$/, "") : raw;
      if (!pattern.test(v)) throw new SettingError({ setting: name, value: raw, expected });
      return v;
    },
  ) as Setting<ValueFor<O, string>>;
}

/**
 * The declaration builders, one per kind: `setting.int({ description, default, min, max })`,
 * `setting.choice({ description, values, default })`, ...
 */
export const setting = { string, int, number, choice, bool, list, url, secret } as const;
