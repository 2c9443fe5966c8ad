/** Child processes and CPU time from /proc (Linux), for benchmarks that measure other processes. */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createInterface } from "node:readline";

const TICKS_PER_S = 100; // USER_HZ on Linux

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** Pids of the descendants of `root` whose command name is `comm`. */
export function findDescendants(root: number, comm: string): number[] {
  const parent = new Map<number, number>();
  const name = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      name.set(Number(d), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  for (const [pid, n] of name) {
    if (n !== comm) continue;
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) {
      if (p === root) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}

export interface NodeChild {
  readonly child: ChildProcess;
  /** Resolves with the first stdout line matching `re`. */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  onLine(fn: (line: string) => void): void;
  exited: Promise<number>;
}

/** Runs a TypeScript entry point of this repo in a new node process (through tsx). */
export function spawnTs(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): NodeChild {
  const child = spawn(process.execPath, ["--import", "tsx", entry, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const listeners: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => listeners.forEach((fn) => fn(line)));
  return {
    child,
    onLine: (fn) => listeners.push(fn),
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const fn = (line: string) => {
          const m = re.exec(line);
          if (m) resolve(m);
        };
        listeners.push(fn);
        child.once("exit", (code) => reject(new Error(`${entry} exited (${code}) before printing ${re}`)));
      }),
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code ?? -1))),
  };
}

/** Pids of every living descendant of `root` (children, their children, ...). */
export function allDescendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds of processes (utime + stime, live ones only; an ended process counts 0). */
export function cpuSecondsOf(pids: readonly number[]): number {
  let s = 0;
  for (const pid of pids) {
    try {
      s += cpuSeconds(pid);
    } catch {
      // ended
    }
  }
  return s;
}
