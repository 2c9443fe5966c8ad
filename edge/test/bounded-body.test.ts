/**
 * Reading a request body with a cap, on plain Requests: the declared length is refused before a
 * byte is read, a body without one is cut as soon as it passes the cap, and one within it is read
 * whole (UTF-8, in any chunking).
 */
import { describe, expect, it } from "vitest";
import { readBoundedText } from "../src/bounded-body.js";

/** A body that sends `chunks` and then, unless `end`, never finishes; counts what was pulled. */
function streamed(chunks: Uint8Array[], end: boolean): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]!);
      else if (end) controller.close();
      // else: never answers, like a client still sending
    },
  });
  return { body, pulled: () => i };
}

const post = (body: ReadableStream<Uint8Array> | string, headers: Record<string, string> = {}) =>
  new Request("http://edge.test/twilio/voice", { method: "POST", body, headers, duplex: "half" } as RequestInit);

describe("readBoundedText", () => {
  it("refuses a declared Content-Length over the cap without reading the body", async () => {
    const s = streamed([new Uint8Array(10)], false);
    const r = await readBoundedText(post(s.body, { "Content-Length": "100000" }), 1000);
    expect(r).toEqual({ ok: false, message: "the body is 100000 bytes, over the 1000-byte limit" });
    expect(s.pulled()).toBeLessThanOrEqual(1); // a stream may pull ahead once; never read on
  });

  it("stops reading a body that passes the cap, though it never ends", async () => {
    const s = streamed([new Uint8Array(600), new Uint8Array(600), new Uint8Array(600)], false);
    expect(await readBoundedText(post(s.body), 1000)).toEqual({
      ok: false,
      message: "the body is over the 1000-byte limit",
    });
    expect(s.pulled()).toBeLessThanOrEqual(3);
  });

  it("reads a body within the cap whole, in any chunking, as UTF-8", async () => {
    const text = "CallSid=CA00&From=%2B972&שלום=1";
    const bytes = new TextEncoder().encode(text);
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 31), bytes.subarray(31)];
    expect(await readBoundedText(post(streamed(chunks, true).body), bytes.length)).toEqual({ ok: true, text });
    expect(await readBoundedText(post(text), 1000)).toEqual({ ok: true, text });
    expect(await readBoundedText(new Request("http://edge.test/", { method: "POST" }), 10)).toEqual({
      ok: true,
      text: "",
    });
  });
});
