/** Command-line helpers shared by the `ozen` commands. */

export const USAGE = `usage:
  ozen call URL --audio FILE [--calls N] [--seconds S] [--speed X] [--auth-token T] [--public-url U]
                [--naive] [--warmup-ms MS] [--json FILE] [--phases]
  ozen bench ingest [--calls N] [--seconds S] [--warmup-s S] [--audio FILE] [--json FILE] [--skip-naive]
  ozen bench runner [--calls N] [--seconds S] [--json FILE]
  ozen bench fanout [--subscribers N] [--rates R1,R2,...] [--seconds S] [--stream call|account] [--json FILE]
  ozen bench fairness [--seconds S] [--speed X] [--capacity C] [--buffer-ms MS] [--json FILE]
  ozen check URL [--json FILE] [--token T] [--auth-token T] [--audio FILE] [--public-url U]
                 [--tail-ms MS] [--events auto|poll] [--limit NAME=VALUE]...
  ozen bench stt --engine whisper --model M --set DIR [--set DIR ...] --json FILE [--files N] [--tail-s S]
                 [--max-calls N] [--anchor whisperlive|none] [--anchor-wait-s S] [--language he|en]
  ozen models [--json]
  ozen models fetch REPO_ID [--revision R] [--dir D] [--json]
  ozen demo [--audio FILE] [--language he|en] [--model M] [--engine whisper|null]`;

export function fail(message: string): never {
  console.error(`ozen: ${message}\n${USAGE}`);
  process.exit(2);
}

export function positive(name: string, raw: string | undefined, fallback: number, allowZero = false): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !allowZero)) {
    fail(`--${name} is ${JSON.stringify(raw)}, expected a ${allowZero ? "non-negative" : "positive"} number`);
  }
  return v;
}
