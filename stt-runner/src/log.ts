/**
 * The runner's one logger: a JSON object per line in the shape Cloud Run's logging agent reads
 * (cloud.google.com/logging/docs/structured-logging): `severity` (`INFO`, `WARNING`, `ERROR`)
 * so levels show as levels, `message` as the entry's text, the other fields as its payload.
 * Lines go to stderr, but for the lifecycle lines `lifecycle` writes to stdout (scripts wait on
 * "stt-runner listening" with its port there). Never transcript text (the fields are the
 * caller's: counters, ids, errors).
 */

export type LogLevel = "info" | "warn" | "error";

/** How every part of the runner logs: a level, a message, and fields. */
export type Log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Cloud Logging's severity for each level. */
export const SEVERITY: Readonly<Record<LogLevel, "INFO" | "WARNING" | "ERROR">> = {
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
};

/** One log line (no newline): `severity` and `message` first; fields cannot overwrite them. */
export function logLine(level: LogLevel, msg: string, fields?: Record<string, unknown>): string {
  const entry: Record<string, unknown> = { severity: SEVERITY[level], message: msg };
  for (const [k, v] of Object.entries(fields ?? {})) if (!(k in entry)) entry[k] = v;
  return JSON.stringify(entry);
}

export interface RunnerLogOptions {
  /** `warn` leaves info lines out. */
  readonly minLevel: "info" | "warn";
  /** Where lines go (default: stderr). */
  readonly write?: (line: string) => void;
}

/** A `Log` writing `logLine`s at `minLevel` and above. */
export function runnerLog(o: RunnerLogOptions): Log {
  const write = o.write ?? ((line: string) => process.stderr.write(line + "\n"));
  return (level, msg, fields) => {
    if (level === "info" && o.minLevel !== "info") return;
    write(logLine(level, msg, fields));
  };
}

/** A lifecycle line (listening, draining) on stdout, whatever the level setting. */
export function lifecycle(msg: string, fields?: Record<string, unknown>): void {
  process.stdout.write(logLine("info", msg, fields) + "\n");
}
