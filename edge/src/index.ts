/**
 * The edge Worker (hono): Twilio's webhook and Media Streams upgrade, routed to one
 * CallSession Durable Object per CallSid, plus the call API.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { SettingError, callSidProblem, streamTwiml, validateTwilioSignature } from "@ozen/shared";
import { logRefusal, requireToken } from "./auth.js";
import { VOICE_BODY_MAX_BYTES, readBoundedText } from "./bounded-body.js";
import { callObject, requireCallSid } from "./call-sid.js";
import { callObjectRequest } from "./call/call-object-route.js";
import { CALL_TOKEN_PARAMETER, mintCallToken } from "./call/call-token.js";
import { configFor, streamUrl } from "./config.js";
import { numberPhraseParameters } from "./call/phrase-config.js";
import type { AppEnv } from "./env.js";
import { mountRecords } from "./records/records-api.js";
import { mountSubscriptions } from "./events/subscriptions.js";

export { CallSession } from "./call/call-session.js";
export { NaiveCallSession } from "./call/naive-session.js";
export { EdgeMetrics } from "./edge-metrics.js";
export { AccountHub } from "./events/account-hub.js";

const app = new Hono<AppEnv>();

app.onError((err, c) => {
  if (err instanceof SettingError) {
    console.error(JSON.stringify({ level: "error", msg: "edge configuration is invalid", error: err.message }));
    return c.text(`edge configuration is invalid: ${err.message}`, 500);
  }
  console.error(JSON.stringify({ level: "error", msg: "unhandled error", error: String(err) }));
  return c.text("internal error", 500);
});

app.use("*", async (c, next) => {
  c.set("config", configFor(c.env));
  await next();
});

/** A Twilio request whose signature does not match: 403, counted. */
function forbidden(c: Context<AppEnv>, counter: string, why: string): Response {
  logRefusal(c, counter, why);
  return c.text("forbidden", 403);
}

app.get("/healthz", (c) => c.text("ok"));

/**
 * Twilio's voice webhook: answers TwiML that streams the call to this edge. Limits before work:
 * no signature header is refused before the body is read; the body is read up to
 * VOICE_BODY_MAX_BYTES (413 past it); the signature (over the URL and the form) is checked
 * before anything in the form is used.
 */
app.post("/twilio/voice", async (c) => {
  const config = c.get("config");
  const signature = c.req.header("x-twilio-signature");
  if (config.verifySignatures && !signature) {
    return forbidden(c, "webhook_bad_signature", "no X-Twilio-Signature");
  }
  const body = await readBoundedText(c.req.raw, VOICE_BODY_MAX_BYTES);
  if (!body.ok) {
    logRefusal(c, "webhook_too_large", body.message);
    return c.text(`${body.message}; a Twilio voice webhook is a few KiB`, 413);
  }
  const form = new URLSearchParams(body.text);
  if (config.verifySignatures) {
    const params: Record<string, string[]> = {};
    for (const [k, v] of form) (params[k] ??= []).push(v);
    const url = config.publicBaseUrl + "/twilio/voice" + new URL(c.req.url).search;
    if (!(await validateTwilioSignature(config.twilioAuthToken, signature, url, params))) {
      return forbidden(c, "webhook_bad_signature", "X-Twilio-Signature does not match");
    }
  }
  const callSid = form.get("CallSid") ?? "";
  const problem = callSidProblem(callSid);
  if (problem !== undefined) return c.text(problem, 400);
  const token = await mintCallToken(config.callTokenSecret, callSid, {
    nowMs: Date.now(),
    ttlMs: config.callTokenTtlMs,
  });
  const twiml = streamTwiml({
    mode: config.streamMode,
    streamUrl: streamUrl(config, callSid),
    // the called number's phrase hints (Twilio's `start` does not name the number)
    parameters: { [CALL_TOKEN_PARAMETER]: token, ...numberPhraseParameters(config.phrases, form.get("To")) },
  });
  return c.body(twiml, 200, { "Content-Type": "text/xml" });
});

async function upgrade(c: Context<AppEnv>, path: string, ns: DurableObjectNamespace): Promise<Response> {
  const config = c.get("config");
  const callSid = c.req.param("callSid") ?? "";
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") return c.text("expected a WebSocket upgrade", 426);
  const problem = callSidProblem(callSid);
  if (problem !== undefined) return c.text(problem, 400);
  if (config.verifySignatures) {
    // Twilio signs the wss:// URL exactly as it appeared in <Stream url>, with no params
    const signed = streamUrl(config, callSid, path);
    if (!(await validateTwilioSignature(config.twilioAuthToken, c.req.header("x-twilio-signature"), signed))) {
      return forbidden(c, "stream_bad_signature", "X-Twilio-Signature on the upgrade does not match");
    }
  }
  return callObject(ns, callSid).fetch(callObjectRequest("stream", callSid, c.req.raw));
}

app.get("/twilio/stream/:callSid", (c) => upgrade(c, "/twilio/stream/", c.env.CALL_SESSION));
app.get("/twilio/stream-naive/:callSid", (c) =>
  c.get("config").benchNaive ? upgrade(c, "/twilio/stream-naive/", c.env.NAIVE_SESSION) : c.notFound(),
);

// Every route below names its token check (auth.ts): bearer token, 401 when missing or wrong.

// ---- agent event streams (bearer, or ?token= on the upgrade) and the live page ----
mountSubscriptions(app);

// ---- the records API (D1 and each call's object) ----
mountRecords(app);

// ---- the call API ----

app.get("/calls/:callSid/stats", requireToken("calls"), requireCallSid, (c) => {
  const callSid = c.req.param("callSid");
  if (c.req.query("naive") === undefined) {
    return callObject(c.env.CALL_SESSION, callSid).fetch(callObjectRequest("stats", callSid));
  }
  // the benchmark's naive objects exist only where they can be streamed to
  if (!c.get("config").benchNaive) return c.text("the naive benchmark handler is off (BENCH_NAIVE)", 404);
  return callObject(c.env.NAIVE_SESSION, callSid).fetch(callObjectRequest("stats", callSid));
});
app.post("/calls/:callSid/clear", requireToken("calls"), requireCallSid, (c) => {
  const callSid = c.req.param("callSid");
  return callObject(c.env.CALL_SESSION, callSid).fetch(callObjectRequest("clear", callSid, c.req.raw));
});
app.get("/stats", requireToken("calls"), (c) =>
  c.env.EDGE_METRICS.get(c.env.EDGE_METRICS.idFromName("global")).fetch("https://metrics/"),
);
// Prometheus text (edge-metrics.ts): active calls, bad input, relay reconnects, drops, backlogs
app.get("/metrics", requireToken("metrics"), (c) =>
  c.env.EDGE_METRICS.get(c.env.EDGE_METRICS.idFromName("global")).fetch("https://metrics/metrics"),
);

export default app;
