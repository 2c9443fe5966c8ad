/**
 * The agent event streams' routes (hono): `GET /calls/{CallSid}/events` (the call's Durable
 * Object), `GET /events` (the account's hub) and the live page `GET /live`. Subscribers
 * authenticate with the API token as a bearer header, or `?token=` on the WebSocket upgrade
 * where a browser cannot set headers (`auth.ts`); a missing or wrong token is 401. A socket that
 * asks for control (`?control=1`) and `POST /calls/{CallSid}/play` need a token that may control
 * (403 otherwise; `docs/agent-control.md`).
 */
import type { Hono } from "hono";
import type { Context } from "hono";
import { logRefusal, requireToken } from "../auth.js";
import type { AppEnv } from "../env.js";
import { accountHub } from "./account-hub.js";
import livePage from "../../assets/live.html";

const CALL_SID = /^[A-Za-z0-9_-]{1,64}$/;

/** The header that tells a call's object a socket may control it; only the Worker sets it. */
export const CONTROL_HEADER = "X-Ozen-Control";

function callObject(c: Context<AppEnv>, callSid: string): DurableObjectStub {
  return c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(callSid));
}

/** The request with the control header set by the Worker alone (a client's own is dropped). */
function withControl(request: Request, control: boolean): Request {
  const headers = new Headers(request.headers);
  headers.delete(CONTROL_HEADER);
  if (control) headers.set(CONTROL_HEADER, "1");
  return new Request(request, { headers });
}

export function mountSubscriptions(app: Hono<AppEnv>): void {
  app.get("/calls/:callSid/events", requireToken("events"), (c) => {
    const callSid = c.req.param("callSid");
    if (!CALL_SID.test(callSid)) return c.text("CallSid is malformed", 400);
    const wantsControl = c.req.query("control") === "1";
    if (wantsControl && !c.get("mayControl")) {
      logRefusal(c, "api_control_refused", "control asked with a token that may not control");
      return c.text("this token may not control calls (read-only, or AGENT_CONTROL=off)", 403);
    }
    return callObject(c, callSid).fetch(withControl(c.req.raw, wantsControl));
  });

  // the agent's voice as a whole file (docs/agent-control.md): bearer only, a token that may control
  app.post("/calls/:callSid/play", requireToken("events"), (c) => {
    const callSid = c.req.param("callSid");
    if (!CALL_SID.test(callSid)) return c.text("CallSid is malformed", 400);
    if (!c.get("mayControl")) {
      logRefusal(c, "api_control_refused", "play with a token that may not control");
      return c.text("this token may not control calls (read-only, or AGENT_CONTROL=off)", 403);
    }
    return callObject(c, callSid).fetch(c.req.raw);
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
