/**
 * Per-frame decode costs in this process (V8, like workerd): the table decode the edge uses,
 * the G.711 formula per sample, the `alawmulaw` package as the outside reference, and the whole
 * per-frame path (JSON parse + base64 + decode) against the naive version of it.
 */
import { performance } from "node:perf_hooks";
import alawmulawPkg from "alawmulaw";
import {
  decodeBase64Into,
  decodeMulawInto,
  encodeBase64,
  mulawToLinearFormula,
  parseTwilioMessage,
  serializeInbound,
} from "@ozen/shared";

const alawmulaw = alawmulawPkg.mulaw;

/** Median of `rounds` timings of `iterations` calls of fn, in ns per call. */
function nsPerCall(fn: () => void, iterations: number, rounds = 7): number {
  for (let i = 0; i < iterations; i++) fn(); // warm-up: let the JIT settle
  const runs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    runs.push(((performance.now() - t0) * 1e6) / iterations);
  }
  runs.sort((a, b) => a - b);
  return Math.round(runs[Math.floor(rounds / 2)]! * 10) / 10;
}

export interface DecodeFigures {
  decode_ns_per_frame: { table: number; per_sample: number; alawmulaw: number };
  parse_decode_ns_per_frame: number;
  parse_decode_ns_per_frame_naive: number;
}

export function measureDecode(source: Uint8Array[]): DecodeFigures {
  // 64 frames (a power of two: the index costs a mask, not a division)
  const frames = Array.from({ length: 64 }, (_, i) => source[i % source.length]!.slice());
  const out = new Int16Array(160);
  let k = 0;
  const next = () => frames[k++ & 63]!;
  let sink = 0;
  const table = nsPerCall(() => {
    decodeMulawInto(next(), out);
    sink ^= out[0]!;
  }, 200_000);
  const perSample = nsPerCall(() => {
    const f = next();
    for (let i = 0; i < f.length; i++) out[i] = mulawToLinearFormula(f[i]!);
    sink ^= out[0]!;
  }, 200_000);
  const ref = nsPerCall(() => {
    sink ^= alawmulaw.decode(next())[0]!;
  }, 200_000);

  const messages = frames.map((f, i) =>
    serializeInbound({
      event: "media",
      sequenceNumber: i + 2,
      streamSid: "MZ00000000000000000000000000000000",
      media: { track: "inbound", chunk: i + 1, timestamp: 99 + 20 * i, payload: encodeBase64(f) },
    }),
  );
  const scratch = new Uint8Array(1024);
  let j = 0;
  const whole = nsPerCall(() => {
    const r = parseTwilioMessage(messages[j++ & 63]!);
    if (r.ok && r.message.event === "media") {
      const n = decodeBase64Into(r.message.media.payload, scratch);
      decodeMulawInto(scratch.subarray(0, n), out);
    }
    sink ^= out[0]!;
  }, 100_000);
  const naive = nsPerCall(() => {
    const m = JSON.parse(messages[j++ & 63]!) as { media: { payload: string } };
    const bin = atob(m.media.payload);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const pcm = new Int16Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) pcm[i] = mulawToLinearFormula(bytes[i]!);
    sink ^= pcm[0]!;
  }, 100_000);
  if (sink === 0x7fffffff) console.log(""); // keep the work observable
  return {
    decode_ns_per_frame: { table, per_sample: perSample, alawmulaw: ref },
    parse_decode_ns_per_frame: whole,
    parse_decode_ns_per_frame_naive: naive,
  };
}
