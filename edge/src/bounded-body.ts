/**
 * Reading a request body with a cap (adapter): the declared `Content-Length` is checked before a
 * byte is read, and the stream is cut as soon as it passes the cap, so an oversized body costs
 * the edge at most the cap in memory and time, whatever the client claims or sends.
 */

/**
 * The voice webhook's body at most, bytes: Twilio's form is a few KiB (call and caller details),
 * and the body must be read before its signature can be checked.
 */
export const VOICE_BODY_MAX_BYTES = 64 * 1024;

export type BoundedText =
  { readonly ok: true; readonly text: string } | { readonly ok: false; readonly message: string };

/** The body of `request` as UTF-8 text, or why not: it is (or says it is) over `maxBytes`. */
export async function readBoundedText(request: Request, maxBytes: number): Promise<BoundedText> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    void request.body?.cancel().catch(() => {});
    return { ok: false, message: `the body is ${declared} bytes, over the ${maxBytes}-byte limit` };
  }
  if (!request.body) return { ok: true, text: "" };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      void reader.cancel().catch(() => {});
      return { ok: false, message: `the body is over the ${maxBytes}-byte limit` };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { ok: true, text: new TextDecoder().decode(bytes) };
}
