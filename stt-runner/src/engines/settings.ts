/** Reading runner settings from the environment, validated, with messages that name the setting. */

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting is out of range or malformed; the message names it and says what is expected. */
export class SettingError extends Error {}

/** A number from `min` to `max`; unset or empty gives `fallback`. */
export function readNumber(env: Env, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  const v = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new SettingError(`${key} is ${JSON.stringify(raw)}, expected a number from ${min} to ${max}`);
  }
  return v;
}

/** One of `allowed`; unset or empty gives `fallback`. */
export function readChoice<T extends string>(env: Env, key: string, fallback: T, allowed: readonly T[]): T {
  const v = env[key] || fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new SettingError(`${key} is ${JSON.stringify(v)}, expected ${allowed.join(", ")}`);
  }
  return v as T;
}

/** A comma- or bar-separated list, trimmed, without empty entries. */
export function readList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(/[,|]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
