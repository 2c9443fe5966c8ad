/**
 * The edge's routes say what they do, on real workerd: every route that names a call checks the
 * CallSid is Twilio's (`CA` + 32 hex digits) before any object is touched (400), the call's object
 * answers only the operation the Worker names (a CallSid such as "stats" reaches no other
 * handler), the naive benchmark object only exists with BENCH_NAIVE=on, and the call API answers
 * 401 (never 403) to a missing or wrong token. The voice webhook does its checks before its work:
 * no signature is refused before the body is read, and a body over 64 KiB is refused (413)
 * without being read to its end.
 */
import { request as httpRequest } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeTwilioSignature } from "@ozen/shared";
import { newIdentity, requestTwiml } from "../../tools/src/simulator.js";
import {
  API_TOKEN,
  AUTH_TOKEN,
  PUBLIC_BASE_URL,
  TwilioCall,
  bearer,
  startRunner,
  startTestEdge,
  testAudio,
  upgradeStatus,
  waitFor,
} from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";
import { refusedUpgrade } from "./transcripts.js";

/** Names that are not CallSids: words, a short sid, the names of the object's operations. */
const NOT_CALL_SIDS = ["anything", "CAnostream", "CA123", "stats", "record", "events", "clear", "stream"];

let runner: TestRunner;
let edge: TestEdge;

beforeAll(async () => {
  runner = await startRunner();
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay` });
});

afterAll(async () => {
  await edge?.close();
  await runner?.close();
});

function get(path: string, headers: Record<string, string> = bearer): Promise<Response> {
  return fetch(edge.url + path, { headers });
}

describe("a CallSid that is not Twilio's", () => {
  it.each(NOT_CALL_SIDS)("%s: every call route answers 400 saying what a CallSid is", async (name) => {
    const paths = [`/calls/${name}`, `/calls/${name}/record`, `/calls/${name}/stats`, `/calls/${name}/events`];
    for (const path of paths) {
      const res = await get(path);
      expect([path, res.status]).toEqual([path, 400]);
      expect(await res.text()).toBe(`CallSid "${name}" is not a Twilio CallSid (CA followed by 32 hex digits)`);
    }
    const clear = await fetch(`${edge.url}/calls/${name}/clear`, { method: "POST", headers: bearer });
    expect(clear.status).toBe(400);
    expect(await refusedUpgrade(edge, `/calls/${name}/events?token=${API_TOKEN}`)).toBe(400);
  });

  it.each(NOT_CALL_SIDS)("%s: a validly signed stream upgrade is refused (400) and reaches no object", async (name) => {
    expect(await upgradeStatus(edge, `/twilio/stream/${name}`, "valid")).toBe(400);
  });

  it("a validly signed voice webhook whose CallSid is not Twilio's is refused (400)", async () => {
    const identity = { ...newIdentity(), callSid: "stats" };
    await expect(
      requestTwiml({ edgeUrl: edge.url, publicUrl: PUBLIC_BASE_URL, authToken: AUTH_TOKEN, identity }),
    ).rejects.toThrow('webhook answered 400: CallSid "stats" is not a Twilio CallSid (CA followed by 32 hex digits)');
  });

  it("the token is checked first: without one the answer is 401 whatever the CallSid", async () => {
    expect((await get("/calls/stats/stats", {})).status).toBe(401);
  });
});

describe("the call's object", () => {
  it("answers each route with its own handler, for a real call too", async () => {
    const call = await TwilioCall.start(edge);
    await call.play(testAudio(10, 1), { speed: Infinity });
    await waitFor("the call to stream", async () => (await edge.callStats(call.callSid)).framesIn === 10);
    // a second upgrade is a stream request (409), never the stats or the record
    expect(await upgradeStatus(edge, `/twilio/stream/${call.callSid}`, "valid")).toBe(409);
    expect(await (await get(`/calls/${call.callSid}/events`)).json()).toHaveProperty("events");
    expect(await (await get(`/calls/${call.callSid}/stats`)).json()).toMatchObject({ state: "streaming" });
    expect(await call.hangUp()).toBe(1000);
  });
});

describe("the naive benchmark object", () => {
  it("is not reached with BENCH_NAIVE off: ?naive on the stats is 404", async () => {
    const sid = newIdentity().callSid;
    const res = await get(`/calls/${sid}/stats?naive`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("the naive benchmark handler is off (BENCH_NAIVE)");
  });
});

describe("the call API's token", () => {
  it.each([
    ["GET", "/stats"],
    ["GET", `/calls/${newIdentity().callSid}/stats`],
    ["POST", `/calls/${newIdentity().callSid}/clear`],
  ])("%s %s answers 401, not 403, without a token or with a wrong one", async (method, path) => {
    for (const headers of [{}, { Authorization: `Bearer ${API_TOKEN}x` }] as Record<string, string>[]) {
      const res = await fetch(edge.url + path, { method, headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="ozen"');
    }
  });
});

/**
 * A POST whose body is still being sent: `first` goes out, the rest never does. Resolves with
 * the answer if it comes while the body is unfinished; rejects when none came in `withinMs`.
 */
function postUnfinished(
  path: string,
  headers: Record<string, string>,
  first: Uint8Array,
  withinMs = 5000,
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const req = httpRequest(edge.url + path, { method: "POST", headers });
  req.on("error", () => {}); // the edge may close the connection once it has answered
  req.write(first);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer in ${withinMs} ms while the body was still being sent`));
    }, withinMs);
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text });
      });
    });
  });
}

const form = { "Content-Type": "application/x-www-form-urlencoded" };

describe("the voice webhook's limits, before its work", () => {
  it("refuses a request without X-Twilio-Signature (403) before reading its body", async () => {
    const r = await postUnfinished(
      "/twilio/voice",
      { ...form, "Content-Length": String(64 * 1024 * 1024) },
      new Uint8Array(1024),
    );
    expect(r.status).toBe(403);
  });

  it("refuses a body that declares more than 64 KiB (413) before reading it", async () => {
    const before = (await edge.counters())["webhook_too_large"] ?? 0;
    const r = await postUnfinished(
      "/twilio/voice",
      { ...form, "X-Twilio-Signature": "anything", "Content-Length": String(64 * 1024 * 1024) },
      new Uint8Array(1024),
    );
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/^the body is 67108864 bytes, over the 65536-byte limit/);
    await waitFor("webhook_too_large + 1", async () => (await edge.counters())["webhook_too_large"] === before + 1);
  });

  it("stops reading a body sent without a length once it passes 64 KiB (413)", async () => {
    const r = await postUnfinished(
      "/twilio/voice",
      { ...form, "X-Twilio-Signature": "anything", "Transfer-Encoding": "chunked" },
      new Uint8Array(65 * 1024).fill(0x61),
    );
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/^the body is over the 65536-byte limit/);
  });

  it("checks the signature over a body within the limit: a wrong one is 403, the right one gets TwiML", async () => {
    const identity = newIdentity();
    const params = { CallSid: identity.callSid, AccountSid: identity.accountSid, Padding: "x".repeat(60 * 1024) };
    const url = PUBLIC_BASE_URL + "/twilio/voice";
    const post = async (signature: string) =>
      fetch(edge.url + "/twilio/voice", {
        method: "POST",
        headers: { ...form, "X-Twilio-Signature": signature },
        body: new URLSearchParams(params),
      });
    expect((await post(await computeTwilioSignature("wrong", url, params))).status).toBe(403);
    const ok = await post(await computeTwilioSignature(AUTH_TOKEN, url, params));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain(`/twilio/stream/${identity.callSid}`);
  });
});
