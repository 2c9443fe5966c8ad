/**
 * The call's log lines (adapter): JSON, one per line, naming the call; WARNING and above only
 * (playbook F: production logs nothing per frame). `once` logs a kind of trouble the first time
 * it happens in the call, so a client that keeps misbehaving cannot flood the log.
 */
export type LogLevel = "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export class CallLog {
  private readonly logged = new Set<string>();

  /** `callSid` names the call in every line. */
  constructor(private readonly callSid: () => string) {}

  line(level: LogLevel, msg: string, fields?: LogFields): void {
    if (level === "info") return;
    const text = JSON.stringify({ level, msg, callSid: this.callSid(), ...fields });
    if (level === "error") console.error(text);
    else console.warn(text);
  }

  /** Logs under `key` only the first time in the call. */
  once(key: string, level: LogLevel, msg: string, fields?: LogFields): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.line(level, msg, fields);
  }
}
