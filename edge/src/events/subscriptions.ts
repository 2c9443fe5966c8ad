/**
 * The agent event streams' routes (hono): `GET /calls/{CallSid}/events` (the call's Durable
 * Object), `GET /events` (the account's hub) and the live page `GET /live`. Subscribers
 * authenticate with the API token as a bearer header, or `?token=` on the WebSocket upgrade
 * where a browser cannot set headers (`auth.ts`); a missing or wrong token is 401. A socket that
 * asks for control (`?control=1`) and `POST /calls/{CallSid}/play` need a token that may control
 * (403 otherwise; `docs/agent-control.md`).
 */
import type { Hono } from "hono";
import { logRefusal, requireToken } from "../auth.js";
import { callObject, requireCallSid } from "../call-sid.js";
import { callObjectRequest } from "../call/call-object-route.js";
import type { AppEnv } from "../env.js";
import { accountHub } from "./account-hub.js";
import livePage from "../../assets/live.html";

/** The header that tells a call's object a socket may control it; only the Worker sets it. */
export const CONTROL_HEADER = "X-Ozen-Control";

export function mountSubscriptions(app: Hono<AppEnv>): void {
  app.get("/calls/:callSid/events", requireToken("events"), requireCallSid, (c) => {
    const callSid = c.req.param("callSid");
    const wantsControl = c.req.query("control") === "1";
    if (wantsControl && !c.get("mayControl")) {
      logRefusal(c, "api_control_refused", "control asked with a token that may not control");
      return c.text("this token may not control calls (read-only, or AGENT_CONTROL=off)", 403);
    }
    const search = new URL(c.req.url).search;
    const req = callObjectRequest("events", callSid, c.req.raw, search);
    // the object trusts this header: set by the Worker alone, a client's own is dropped
    req.headers.delete(CONTROL_HEADER);
    if (wantsControl) req.headers.set(CONTROL_HEADER, "1");
    return callObject(c.env.CALL_SESSION, callSid).fetch(req);
  });

  // the agent's voice as a whole file (docs/agent-control.md): bearer only, a token that may control
  app.post("/calls/:callSid/play", requireToken("events"), requireCallSid, (c) => {
    const callSid = c.req.param("callSid");
    if (!c.get("mayControl")) {
      logRefusal(c, "api_control_refused", "play with a token that may not control");
      return c.text("this token may not control calls (read-only, or AGENT_CONTROL=off)", 403);
    }
    const search = new URL(c.req.url).search;
    return callObject(c.env.CALL_SESSION, callSid).fetch(callObjectRequest("play", callSid, c.req.raw, search));
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
