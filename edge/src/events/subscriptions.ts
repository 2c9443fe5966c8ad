/**
 * The agent event streams' routes (hono): `GET /calls/{CallSid}/events` (the call's Durable
 * Object), `GET /events` (the account's hub) and the live page `GET /live`. Subscribers
 * authenticate with the API token as a bearer header, or `?token=` on the WebSocket upgrade
 * where a browser cannot set headers (`auth.ts`); a missing or wrong token is 401.
 */
import type { Hono } from "hono";
import { requireToken } from "../auth.js";
import { callObject, requireCallSid } from "../call-sid.js";
import { callObjectRequest } from "../call/call-object-route.js";
import type { AppEnv } from "../env.js";
import { accountHub } from "./account-hub.js";
import livePage from "../../assets/live.html";

export function mountSubscriptions(app: Hono<AppEnv>): void {
  app.get("/calls/:callSid/events", requireToken("events"), requireCallSid, (c) => {
    const callSid = c.req.param("callSid");
    const search = new URL(c.req.url).search;
    return callObject(c.env.CALL_SESSION, callSid).fetch(callObjectRequest("events", callSid, c.req.raw, search));
  });

  app.get("/events", requireToken("events"), (c) => {
    const url = new URL(c.req.url);
    return accountHub(c.env, c.get("account")).fetch(new Request(`https://hub/events${url.search}`, c.req.raw));
  });

  app.get("/live", (c) =>
    c.body(livePage, 200, {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "Content-Security-Policy":
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:",
    }),
  );
}
