/**
 * The `ozen` command line as a user meets it: help for every command and benchmark (exit 0), and
 * a bad argument as one line naming it (exit 2), never a stack trace. Runs the real CLI process.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { commandHelp, wrap } from "../src/args.js";
import { BENCHMARKS, COMMANDS } from "../src/commands.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function ozen(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [path.join(repo, "tools/bin/ozen.js"), ...args], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** One line on stderr, nothing on stdout, exit 2, and no trace of a stack. */
function expectUsageError(r: Run, line: string): void {
  expect(r, r.stderr).toMatchObject({ code: 2, stdout: "" });
  expect(r.stderr.trimEnd().split("\n")).toEqual([line]);
  expect(r.stderr).not.toMatch(/\n\s+at |Error:/);
}

const NAMES = COMMANDS.map((c) => c.name);

describe("ozen help", () => {
  it("lists every command with its summary for --help, -h and help, exit 0", async () => {
    const runs = await Promise.all([ozen("--help"), ozen("-h"), ozen("help")]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^usage: ozen COMMAND \[options\]\n/);
      for (const name of NAMES) expect(r.stdout).toMatch(new RegExp(`^  ${name}\\b`, "m"));
    }
    expect(runs[1]!.stdout).toBe(runs[0]!.stdout);
    expect(runs[2]!.stdout).toBe(runs[0]!.stdout);
  });

  it("prints each command's own usage and options for `ozen CMD --help`, the same as `ozen help CMD`", async () => {
    for (const c of COMMANDS) {
      const [own, viaHelp] = await Promise.all([
        ozen(...c.name.split(" "), "--help"),
        ozen("help", ...c.name.split(" ")),
      ]);
      expect(own.code, `${c.name}: ${own.stderr}`).toBe(0);
      expect(own.stdout).toBe(`${commandHelp(c)}\n`);
      expect(own.stdout.startsWith(`usage: ozen ${c.name}`)).toBe(true);
      for (const option of Object.keys(c.options)) expect(own.stdout).toContain(`--${option}`);
      expect(viaHelp).toEqual(own);
    }
  }, 120_000);

  it("takes -h anywhere among a command's arguments, even beside ones it would refuse", async () => {
    const r = await ozen("bench", "stt", "--set", "nowhere", "--bogus", "-h");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${commandHelp(BENCHMARKS.stt)}\n`);
  });

  it("lists the benchmarks for `ozen bench --help`", async () => {
    const r = await ozen("bench", "--help");
    expect(r.code).toBe(0);
    for (const name of Object.keys(BENCHMARKS)) expect(r.stdout).toMatch(new RegExp(`^  ${name}\\b`, "m"));
  });
});

describe("ozen with a bad argument", () => {
  it("names an unknown option in one line and exits 2, for every command", async () => {
    const runs = await Promise.all(COMMANDS.map((c) => ozen(...c.name.split(" "), "--no-such-option")));
    runs.forEach((r, i) => {
      const name = COMMANDS[i]!.name;
      expectUsageError(r, `ozen ${name}: unknown option '--no-such-option' (see \`ozen ${name} --help\`)`);
    });
  }, 120_000);

  it("says which option lacks its value", async () => {
    expectUsageError(
      await ozen("bench", "ingest", "--calls"),
      "ozen bench ingest: option '--calls <value>' argument missing (see `ozen bench ingest --help`)",
    );
  });

  it("refuses an argument a command does not take", async () => {
    expectUsageError(
      await ozen("models", "tiny.en"),
      'ozen models: unexpected argument "tiny.en" (see `ozen models --help`)',
    );
  });

  it("names an unknown command, an unknown benchmark and a missing one", async () => {
    const [command, benchmark, none] = await Promise.all([ozen("nope"), ozen("bench", "nope"), ozen("bench")]);
    expectUsageError(command, 'ozen: unknown command "nope" (see `ozen --help`)');
    expectUsageError(
      benchmark,
      'ozen bench: unknown benchmark "nope"; available: ingest, runner, records, fanout, fairness, soak, stt, vad, turn (see `ozen bench --help`)',
    );
    expectUsageError(
      none,
      "ozen bench: which benchmark? ingest, runner, records, fanout, fairness, soak, stt, vad, turn (see `ozen bench --help`)",
    );
  });

  it("with no command at all prints the usage on stderr and exits 2", async () => {
    const r = await ozen();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^usage: ozen COMMAND/);
  });

  it("checks a value the parser cannot: a number option that is not a number", async () => {
    expectUsageError(
      await ozen("bench", "fanout", "--subscribers", "many"),
      'ozen bench fanout: --subscribers is "many", expected a positive number (see `ozen bench fanout --help`)',
    );
  });

  it("refuses a records retry cap below the edge's first retry before it starts a stack", async () => {
    expectUsageError(
      await ozen("bench", "records", "--retry-max-ms", "500"),
      "ozen bench records: --retry-max-ms is 500, expected 1000 or more (the retries start at 1000 ms) (see `ozen bench records --help`)",
    );
  });
});

describe("help text layout", () => {
  it("wraps at word boundaries within the width, a long word alone on its line", () => {
    expect(wrap("one two three four", 9)).toEqual(["one two", "three", "four"]);
    expect(wrap("a supercalifragilistic b", 5)).toEqual(["a", "supercalifragilistic", "b"]);
    expect(wrap("  spaced   out  ", 80)).toEqual(["spaced out"]);
  });

  it("keeps every help line of every command within 100 columns", () => {
    for (const c of COMMANDS) {
      for (const line of commandHelp(c).split("\n")) expect(line.length, `${c.name}: ${line}`).toBeLessThanOrEqual(100);
    }
  });
});
