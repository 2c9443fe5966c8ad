/**
 * The CallSid in a route (hono middleware): every route that names a call checks it is Twilio's
 * format (`CA` + 32 hex digits) before any Durable Object or record is touched; anything else is
 * 400 with a message saying what a CallSid looks like.
 */
import { createMiddleware } from "hono/factory";
import { callSidProblem } from "@ozen/shared";
import type { AppEnv } from "./env.js";

/** Middleware: the route's `:callSid` must be a Twilio CallSid; else 400. */
export const requireCallSid = createMiddleware<AppEnv>(async (c, next) => {
  const problem = callSidProblem(c.req.param("callSid") ?? "");
  if (problem !== undefined) return c.text(problem, 400);
  await next();
});

/** The call's Durable Object in `ns` (the CallSid already checked). */
export function callObject(ns: DurableObjectNamespace, callSid: string): DurableObjectStub {
  return ns.get(ns.idFromName(callSid));
}
