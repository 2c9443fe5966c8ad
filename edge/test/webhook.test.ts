/**
 * Twilio's voice webhook on real workerd: signed requests get TwiML that streams the call to
 * this edge; anything else is refused and counted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeTwilioSignature } from "@ozen/shared";
import { newIdentity } from "../../tools/src/simulator.js";
import { AUTH_TOKEN, PUBLIC_BASE_URL, freePort, startTestEdge, upgradeStatus, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

let edge: TestEdge;

beforeAll(async () => {
  // nothing here reaches the runner: point the edge at a port nobody listens on
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${await freePort()}/relay` });
});

afterAll(async () => {
  await edge?.close();
});

function voiceParams(callSid: string): Record<string, string> {
  return {
    AccountSid: "AC" + "0".repeat(32),
    CallSid: callSid,
    CallStatus: "ringing",
    Direction: "inbound",
    From: "+972501234567",
    To: "+972500000001",
  };
}

/** POSTs the voice webhook with `params` and the given X-Twilio-Signature (none when undefined). */
function postVoice(params: Record<string, string>, signature: string | undefined): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
  if (signature !== undefined) headers["X-Twilio-Signature"] = signature;
  return fetch(`${edge.url}/twilio/voice`, { method: "POST", headers, body: new URLSearchParams(params) });
}

const sign = (url: string, params: Record<string, string>, token = AUTH_TOKEN) =>
  computeTwilioSignature(token, url, params);

async function counter(name: string): Promise<number> {
  return (await edge.counters())[name] ?? 0;
}

describe("POST /twilio/voice", () => {
  it("answers a signed webhook with <Connect><Stream> to the call's path and an ozen_token parameter", async () => {
    const { callSid } = newIdentity();
    const params = voiceParams(callSid);
    const res = await postVoice(params, await sign(`${PUBLIC_BASE_URL}/twilio/voice`, params));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/xml/);
    const xml = await res.text();
    expect(xml).toMatch(
      new RegExp(
        `^<\\?xml[^>]*\\?><Response><Connect><Stream url="ws://127\\.0\\.0\\.1:1/twilio/stream/${callSid}">` +
          `<Parameter name="ozen_token" value="v1\\.\\d+\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}"/></Stream></Connect></Response>$`,
      ),
    );
  });

  it("gives each call its own ozen_token", async () => {
    const tokens = [];
    for (const { callSid } of [newIdentity(), newIdentity()]) {
      const params = voiceParams(callSid);
      const xml = await (await postVoice(params, await sign(`${PUBLIC_BASE_URL}/twilio/voice`, params))).text();
      tokens.push(/name="ozen_token" value="([^"]+)"/.exec(xml)?.[1]);
    }
    expect(tokens[0]).toEqual(expect.any(String));
    expect(tokens[1]).toEqual(expect.any(String));
    expect(tokens[0]).not.toBe(tokens[1]);
  });

  it("refuses a bad signature with 403 and counts webhook_bad_signature", async () => {
    const before = await counter("webhook_bad_signature");
    const params = voiceParams(newIdentity().callSid);
    const res = await postVoice(params, await sign(`${PUBLIC_BASE_URL}/twilio/voice`, params, "wrong-token"));
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain("<Stream");
    await waitFor("webhook_bad_signature + 1", async () => (await counter("webhook_bad_signature")) === before + 1);
  });

  it("refuses a missing signature with 403 and counts it", async () => {
    const before = await counter("webhook_bad_signature");
    const res = await postVoice(voiceParams(newIdentity().callSid), undefined);
    expect(res.status).toBe(403);
    await waitFor("webhook_bad_signature + 1", async () => (await counter("webhook_bad_signature")) === before + 1);
  });

  it("refuses a signature over other form values (a tampered request)", async () => {
    const params = voiceParams(newIdentity().callSid);
    const signature = await sign(`${PUBLIC_BASE_URL}/twilio/voice`, params);
    const res = await postVoice({ ...params, From: "+972509999999" }, signature);
    expect(res.status).toBe(403);
  });

  it("checks the signature against PUBLIC_BASE_URL, not the Host it was reached on", async () => {
    const params = voiceParams(newIdentity().callSid);
    const res = await postVoice(params, await sign(`${edge.url}/twilio/voice`, params));
    expect(res.status).toBe(403);
  });

  it("answers 400 to a signed webhook without a CallSid", async () => {
    const params = voiceParams("");
    const res = await postVoice(params, await sign(`${PUBLIC_BASE_URL}/twilio/voice`, params));
    expect(res.status).toBe(400);
  });

  it("logs a refused webhook as a warning naming its counter, without the caller's number", async () => {
    const params = voiceParams(newIdentity().callSid);
    await postVoice(params, "forged");
    const line = await waitFor("the refusal's log line", () =>
      edge.logs.find((l) => l.includes('"counter":"webhook_bad_signature"')),
    );
    expect(JSON.parse(line)).toMatchObject({ level: "warn", msg: "request refused", path: "/twilio/voice" });
    expect(edge.logs.join("\n")).not.toContain(params["From"]!);
  });
});

describe("routes", () => {
  it("does not route the naive benchmark handler when BENCH_NAIVE is off (404)", async () => {
    const { callSid } = newIdentity();
    expect(await upgradeStatus(edge, `/twilio/stream-naive/${callSid}`, "valid")).toBe(404);
  });

  it("answers the health check", async () => {
    const res = await fetch(`${edge.url}/healthz`);
    expect([res.status, await res.text()]).toEqual([200, "ok"]);
  });
});
