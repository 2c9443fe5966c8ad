/**
 * Standard base64 (RFC 4648, with padding) straight into a caller-owned buffer.
 *
 * Written by hand because neither runtime has an allocation-free decoder: `atob` returns a
 * string and Node's `Buffer.from` a fresh buffer, both per 20 ms frame. This one validates as it
 * goes and reports bad input as -1 instead of throwing.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const DECODE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[ALPHABET.charCodeAt(i)] = i;
  return t;
})();

/** Bytes that `s` decodes to, or -1 when its length cannot be base64. */
export function base64DecodedLength(s: string): number {
  const n = s.length;
  if (n % 4 !== 0) return -1;
  if (n === 0) return 0;
  let pad = 0;
  if (s.charCodeAt(n - 1) === 61) pad++;
  if (s.charCodeAt(n - 2) === 61) pad++;
  return (n / 4) * 3 - pad;
}

/**
 * Decodes `s` into `out` from offset 0. Returns the byte count, or -1 when `s` is not valid
 * padded base64 or `out` is too small. `out` may be partly written on failure.
 */
export function decodeBase64Into(s: string, out: Uint8Array): number {
  const len = base64DecodedLength(s);
  if (len < 0 || len > out.length) return -1;
  const n = s.length;
  const t = DECODE;
  let o = 0;
  for (let i = 0; i < n; i += 4) {
    const c0 = s.charCodeAt(i);
    const c1 = s.charCodeAt(i + 1);
    const c2 = s.charCodeAt(i + 2);
    const c3 = s.charCodeAt(i + 3);
    const a = c0 < 128 ? t[c0]! : -1;
    const b = c1 < 128 ? t[c1]! : -1;
    if ((a | b) < 0) return -1;
    out[o++] = (a << 2) | (b >> 4);
    if (c2 === 61) {
      // "xx==" is only valid as the last quantum
      if (c3 !== 61 || i + 4 !== n) return -1;
      break;
    }
    const c = c2 < 128 ? t[c2]! : -1;
    if (c < 0) return -1;
    out[o++] = ((b & 15) << 4) | (c >> 2);
    if (c3 === 61) {
      if (i + 4 !== n) return -1;
      break;
    }
    const d = c3 < 128 ? t[c3]! : -1;
    if (d < 0) return -1;
    out[o++] = ((c & 3) << 6) | d;
  }
  return o;
}

/** Encodes bytes as padded base64 (outbound media; not on the inbound hot path). */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  const n = bytes.length;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    s += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]! + ALPHABET[(v >> 6) & 63]! + ALPHABET[v & 63]!;
  }
  if (i < n) {
    const v = (bytes[i]! << 16) | (i + 1 < n ? bytes[i + 1]! << 8 : 0);
    s += ALPHABET[v >> 18]! + ALPHABET[(v >> 12) & 63]!;
    s += i + 1 < n ? ALPHABET[(v >> 6) & 63]! + "=" : "==";
  }
  return s;
}
