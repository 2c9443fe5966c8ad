/**
 * The records API (hono routes): `GET /calls` (a page of calls, newest first, by time and status),
 * `GET /calls/{CallSid}` (the call and its final utterances with timings) and
 * `GET /calls/{CallSid}/record` (the call as its Durable Object holds it: timeline, D1 and webhook
 * state). Bearer token (`API_TOKEN`, `auth.ts`); a missing or wrong token is 401.
 */
import type { Context, Hono } from "hono";
import { requireToken } from "../auth.js";
import { callObject, requireCallSid } from "../call-sid.js";
import { callObjectRequest } from "../call/call-object-route.js";
import type { AppEnv, Env } from "../env.js";
import type { CallRecord, CallStatus, UtteranceRecord } from "./call-record.js";
import type { LedgerView } from "./ledger.js";
import { decodeCursor, getCall, listCalls } from "./records.js";
import type { CallQuery } from "./records.js";

const MAX_LIMIT = 200;

/** A wall time given as ms since the epoch or as an ISO 8601 date; undefined when absent. */
function timeParam(c: Context<AppEnv>, name: string): number | undefined | Error {
  const v = c.req.query(name);
  if (v === undefined || v === "") return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(ms)
    ? ms
    : new Error(`${name} is ${JSON.stringify(v)}, expected ms since the epoch or an ISO date`);
}

function parseQuery(c: Context<AppEnv>): CallQuery | string {
  const rawLimit = c.req.query("limit");
  const limit = rawLimit === undefined ? 50 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    return `limit is ${JSON.stringify(rawLimit)}, expected a whole number from 1 to ${MAX_LIMIT}`;
  }
  const status = c.req.query("status");
  if (status !== undefined && status !== "in-progress" && status !== "ended") {
    return `status is ${JSON.stringify(status)}, expected in-progress or ended`;
  }
  const sinceMs = timeParam(c, "since");
  if (sinceMs instanceof Error) return sinceMs.message;
  const untilMs = timeParam(c, "until");
  if (untilMs instanceof Error) return untilMs.message;
  const rawCursor = c.req.query("cursor");
  const cursor = rawCursor ? decodeCursor(rawCursor) : undefined;
  if (rawCursor && !cursor) return "cursor is not one this API gave (use nextCursor from the previous page)";
  const accountSid = c.req.query("account");
  return {
    limit,
    ...(status ? { status: status as CallStatus } : {}),
    ...(accountSid ? { accountSid } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    ...(untilMs !== undefined ? { untilMs } : {}),
    ...(cursor ? { cursor } : {}),
  };
}

function publicUtterance(u: UtteranceRecord): Omit<UtteranceRecord, "version"> {
  const { version: _version, ...rest } = u;
  return rest;
}

async function fromDurableObject(env: Env, callSid: string): Promise<LedgerView> {
  const res = await callObject(env.CALL_SESSION, callSid).fetch(callObjectRequest("record", callSid));
  return (await res.json()) as LedgerView;
}

function d1Unavailable(c: Context<AppEnv>, e: unknown): Response {
  console.warn(JSON.stringify({ level: "warn", msg: "records API: D1 failed", error: String(e).slice(0, 200) }));
  return c.text("the records database did not answer; try again", 503, { "Retry-After": "5" });
}

export function mountRecords(app: Hono<AppEnv>): void {
  app.get("/calls", requireToken("records"), async (c) => {
    const q = parseQuery(c);
    if (typeof q === "string") return c.text(q, 400);
    if (!c.env.DB) return c.text("no D1 binding DB: the records API has nothing to list", 503);
    try {
      return c.json(await listCalls(c.env.DB, q));
    } catch (e) {
      return d1Unavailable(c, e);
    }
  });

  app.get("/calls/:callSid", requireToken("records"), requireCallSid, async (c) => {
    const callSid = c.req.param("callSid");
    let found: { call: CallRecord; utterances: UtteranceRecord[] } | undefined;
    let d1Error: unknown;
    if (c.env.DB) {
      try {
        found = await getCall(c.env.DB, callSid);
      } catch (e) {
        d1Error = e;
      }
    }
    if (found) return c.json({ source: "d1", call: found.call, utterances: found.utterances.map(publicUtterance) });
    // not in D1 (yet, or D1 is failing): the call's own object has the durable record
    const view = await fromDurableObject(c.env, callSid);
    if (view.call) {
      return c.json({ source: "durable-object", call: view.call, utterances: view.utterances.map(publicUtterance) });
    }
    if (d1Error !== undefined) return d1Unavailable(c, d1Error);
    return c.text("no such call", 404);
  });

  app.get("/calls/:callSid/record", requireToken("records"), requireCallSid, async (c) => {
    const callSid = c.req.param("callSid");
    const view = await fromDurableObject(c.env, callSid);
    return view.call ? c.json(view) : c.text("no such call", 404);
  });
}
