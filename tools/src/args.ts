/**
 * Command-line helpers shared by the `ozen` commands: each command declares one usage table
 * (`CommandUsage`, in commands.ts); `parseCommand` reads argv with node:util's parseArgs against
 * it, prints its help for `--help`, and turns a bad argument into one line and exit status 2.
 */
import { parseArgs } from "node:util";

/** One option: what parseArgs needs, and what `--help` prints. */
export interface OptionUsage {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly default?: string;
  /** The value's placeholder in the help: `N`, `FILE`. */
  readonly value?: string;
  /** What it does, with its default. */
  readonly help: string;
}

export interface CommandUsage<O extends Readonly<Record<string, OptionUsage>> = Readonly<Record<string, OptionUsage>>> {
  /** As typed after `ozen`: `check`, `bench stt`. */
  readonly name: string;
  /** The positional arguments as the usage line shows them: `URL`. */
  readonly positionals?: string;
  /** One line for `ozen --help`. */
  readonly summary: string;
  readonly options: O;
  /** Lines printed after the option table. */
  readonly notes?: readonly string[];
}

type ParsedCommand<O extends Readonly<Record<string, OptionUsage>>> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
>;

/** The command whose arguments are being read, for `fail`'s message. */
let current = "";

/** Prints `ozen COMMAND: message` and a pointer to its help on one line, and exits with status 2. */
export function usageError(command: string, message: string): never {
  const who = command ? `ozen ${command}` : "ozen";
  console.error(`${who}: ${message} (see \`${who} --help\`)`);
  process.exit(2);
}

/** `usageError` for the command whose arguments are being read. */
export function fail(message: string): never {
  return usageError(current, message);
}

/** Help lines are wrapped to this many columns. */
const HELP_COLUMNS = 100;

/** `text` in lines of at most `columns` characters (a longer word stands alone). */
export function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** A two-column table (`  left  right`), the right column wrapped under itself. */
export function helpTable(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map((r) => r[0].length));
  const indent = " ".repeat(width + 4);
  return rows.flatMap(([left, right]) =>
    wrap(right, Math.max(40, HELP_COLUMNS - indent.length)).map((part, i) =>
      i === 0 ? `  ${left.padEnd(width)}  ${part}` : `${indent}${part}`,
    ),
  );
}

/** The help text of one command: usage line, summary, option table, notes. */
export function commandHelp(c: CommandUsage): string {
  const rows: [string, string][] = Object.entries(c.options).map(([name, o]) => [
    `--${name}${o.value ? ` ${o.value}` : ""}`,
    o.help,
  ]);
  rows.push(["-h, --help", "this help"]);
  const lines = [
    `usage: ozen ${c.name}${c.positionals ? ` ${c.positionals}` : ""} [options]`,
    "",
    ...wrap(c.summary, HELP_COLUMNS),
    "",
    "options:",
    ...helpTable(rows),
  ];
  if (c.notes?.length) lines.push("", ...c.notes.flatMap((n) => wrap(n, HELP_COLUMNS)));
  return lines.join("\n");
}

/** Whether argv asks for help (`--help` or `-h` before any `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/**
 * Reads `argv` against the command's table. `--help` prints the help and exits 0; an unknown
 * option, a missing value or an argument the command does not take prints one line and exits 2.
 */
export function parseCommand<const O extends Readonly<Record<string, OptionUsage>>>(
  c: CommandUsage<O>,
  argv: string[],
): ParsedCommand<O> {
  current = c.name;
  if (wantsHelp(argv)) {
    console.log(commandHelp(c));
    process.exit(0);
  }
  const options = Object.fromEntries(
    Object.entries(c.options).map(([name, o]) => [
      name,
      {
        type: o.type,
        ...(o.multiple ? { multiple: true } : {}),
        ...(o.default !== undefined ? { default: o.default } : {}),
      },
    ]),
  ) as unknown as O;
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    if (!c.positionals && parsed.positionals.length > 0) {
      fail(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
    }
    return parsed;
  } catch (e) {
    // node:util's messages name the option; their first sentence is the error, the rest advice
    const message = e instanceof Error ? e.message.split(/\.\s/)[0]!.replace(/\.$/, "") : String(e);
    return fail(message.charAt(0).toLowerCase() + message.slice(1));
  }
}

/** A number option: `fallback` when absent; a clear failure when not a positive (or non-negative) number. */
export function positive(name: string, raw: string | undefined, fallback: number, allowZero = false): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !allowZero)) {
    fail(`--${name} is ${JSON.stringify(raw)}, expected a ${allowZero ? "non-negative" : "positive"} number`);
  }
  return v;
}
