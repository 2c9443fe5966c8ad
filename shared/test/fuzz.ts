/**
 * What the fuzz tests (`fuzz-*.test.ts`, here and in stt-runner) share: a time budget per target
 * and structured mutations of valid messages.
 *
 * Each target runs for `FUZZ_MS` (OZEN_FUZZ_MS, default 2000 ms) or until a million inputs,
 * whichever comes first, so CI spends a few seconds per target and a long local hunt is one
 * variable away (`OZEN_FUZZ_MS=600000 npx vitest run shared/test/fuzz-twilio.test.ts`). A failure
 * prints fast-check's seed and shrunk counterexample; keep it as a regression test.
 */
import fc from "fast-check";

/** Time budget of one fuzz target, ms. */
export const FUZZ_MS = Number(process.env["OZEN_FUZZ_MS"] ?? 2000);

/** The vitest timeout for a test that runs `targets` fuzz targets. */
export function fuzzTimeoutMs(targets = 1): number {
  return targets * FUZZ_MS + 30_000;
}

/** `fc.assert` parameters: stop after the budget (not a failure), else after a million runs. */
export const fuzzParams: fc.Parameters<unknown> = {
  numRuns: 1_000_000,
  interruptAfterTimeLimit: FUZZ_MS,
  markInterruptAsFailure: false,
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One edit of a JSON value, at the `at`-th node (in pre-order, modulo the node count). */
export interface JsonEdit {
  readonly op: "delete" | "replace" | "retype" | "add" | "wrap";
  readonly at: number;
  readonly value: Json;
  readonly key: string;
}

/** Values a parser is likely to mistake for the right type: near misses, not only noise. */
const nearMiss: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, 1.5, "", "0", "-1", "1e3", " 1", "NaN", [], {}, 1e300, -0),
  fc.constantFrom<Json>(2 ** 31, 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, "99999999999999999999"),
  fc.integer().map((n): Json => n),
  fc.string({ maxLength: 8 }),
);

/** Edits for `mutateJson`: replacements are near misses or any JSON value. */
export const jsonEdit: fc.Arbitrary<JsonEdit> = fc.record({
  op: fc.constantFrom("delete", "replace", "retype", "add", "wrap"),
  at: fc.nat(),
  value: fc.oneof(nearMiss, fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>),
  key: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("__proto__", "constructor", "type", "event", "v")),
});

/** Where a value sits: its container and its key there. */
interface Place {
  readonly parent: Json[] | { [k: string]: Json };
  readonly key: string | number;
}

/** Every place in `v`, in pre-order. */
function nodes(v: Json, out: Place[]): void {
  if (Array.isArray(v)) {
    v.forEach((c, i) => {
      out.push({ parent: v, key: i });
      nodes(c, out);
    });
  } else if (v !== null && typeof v === "object") {
    for (const k of Object.keys(v)) {
      out.push({ parent: v, key: k });
      nodes(v[k]!, out);
    }
  }
}

/** The same value in another JSON type (a number as a string and back, ...). */
function retyped(v: Json): Json {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return v !== "" && Number.isFinite(Number(v)) ? Number(v) : [v];
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v === null) return "null";
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  return Object.values(v);
}

/**
 * A copy of an edit's value to put in the tree: later edits change the tree in place, and
 * fast-check hands the same value to other runs while it shrinks; put in by reference, a value
 * grew run after run until it held itself, and JSON.stringify threw on the cycle.
 */
function fresh(value: Json): Json {
  return structuredClone(value);
}

/** Applies `edits` to a deep copy of `value`: a valid message, a little wrong. */
export function mutateJson(value: unknown, edits: readonly JsonEdit[]): unknown {
  const root = { root: JSON.parse(JSON.stringify(value)) as Json };
  for (const e of edits) {
    const all: Place[] = [];
    nodes(root as unknown as Json, all);
    const n = all[e.at % all.length]!;
    const parent = n.parent as Record<string | number, Json>;
    const current = parent[n.key]!;
    switch (e.op) {
      case "delete":
        if (Array.isArray(parent)) parent.splice(n.key as number, 1);
        else if (n.key !== "root") Reflect.deleteProperty(parent, n.key);
        break;
      case "replace":
        parent[n.key] = fresh(e.value);
        break;
      case "retype":
        parent[n.key] = retyped(current);
        break;
      case "add":
        if (Array.isArray(current)) current.push(fresh(e.value));
        else if (current !== null && typeof current === "object")
          Object.defineProperty(current, e.key, {
            value: fresh(e.value),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        break;
      case "wrap":
        parent[n.key] = [current];
        break;
    }
  }
  return root.root;
}

/** One edit of a text: cut it, or put in, replace or remove a character. */
export interface TextEdit {
  readonly op: "truncate" | "insert" | "replace" | "remove" | "duplicate";
  readonly at: number;
  readonly text: string;
}

export const textEdit: fc.Arbitrary<TextEdit> = fc.record({
  op: fc.constantFrom("truncate", "insert", "replace", "remove", "duplicate"),
  at: fc.nat(),
  text: fc.oneof(
    fc.constantFrom('"', "{", "}", "[", ",", ":", "\\", "\\u", "0", "-", "e", "\u0000", "\ud800"),
    fc.string(),
  ),
});

/** Applies `edits` to `text` (positions modulo its length). */
export function mutateText(text: string, edits: readonly TextEdit[]): string {
  let s = text;
  for (const e of edits) {
    const i = s.length === 0 ? 0 : e.at % (s.length + 1);
    if (e.op === "truncate") s = s.slice(0, i);
    else if (e.op === "insert") s = s.slice(0, i) + e.text + s.slice(i);
    else if (e.op === "replace") s = s.slice(0, i) + e.text + s.slice(i + e.text.length);
    else if (e.op === "remove") s = s.slice(0, i) + s.slice(i + 1 + (e.text.length % 4));
    else s = s.slice(0, i) + s.slice(i, i + 1 + (e.text.length % 8)) + s.slice(i);
  }
  return s;
}

/** One edit of bytes: flip bits, set a byte, cut, or insert bytes. */
export interface ByteEdit {
  readonly op: "flip" | "set" | "truncate" | "insert";
  readonly at: number;
  readonly byte: number;
  readonly bytes: Uint8Array;
}

export const byteEdit: fc.Arbitrary<ByteEdit> = fc.record({
  op: fc.constantFrom("flip", "set", "truncate", "insert"),
  at: fc.nat(),
  byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff)),
  bytes: fc.uint8Array({ maxLength: 16 }),
});

/** Applies `edits` to a copy of `bytes`, with most edits in the first `headBytes` (the header). */
export function mutateBytes(bytes: Uint8Array, edits: readonly ByteEdit[], headBytes = bytes.length): Uint8Array {
  let b = Uint8Array.from(bytes);
  for (const e of edits) {
    const span = e.at % 4 === 0 ? b.length : Math.min(headBytes, b.length);
    const i = span === 0 ? 0 : (e.at >>> 2) % span;
    if (e.op === "flip" && i < b.length) b[i] = b[i]! ^ (1 << (e.byte & 7));
    else if (e.op === "set" && i < b.length) b[i] = e.byte;
    else if (e.op === "truncate") b = b.slice(0, i);
    else if (e.op === "insert") {
      const out = new Uint8Array(b.length + e.bytes.length);
      out.set(b.subarray(0, i));
      out.set(e.bytes, i);
      out.set(b.subarray(i), i + e.bytes.length);
      b = out;
    }
  }
  return b;
}
