/**
 * The agent event streams' routes (hono): `GET /calls/{CallSid}/events` (the call's Durable
 * Object), `GET /events` (the account's hub) and the live page `GET /live`. Subscribers
 * authenticate with the API token as a bearer header, or `?token=` where a browser cannot set
 * headers on a WebSocket; a missing or wrong token is 401.
 */
import type { Context, Hono } from "hono";
import type { EdgeConfig } from "../config.js";
import type { Env } from "../env.js";
import { accountHub } from "./account-hub.js";
import livePage from "../../assets/live.html";

type SubscriptionEnv = { Bindings: Env; Variables: { config: EdgeConfig } };

const CALL_SID = /^[A-Za-z0-9_-]{1,64}$/;

/** The account the request's token opens, or the response refusing it. */
function authenticate(c: Context<SubscriptionEnv>): { account: string } | Response {
  const config = c.get("config");
  if (!config.apiToken) return c.text("API_TOKEN is not configured; the event streams are disabled", 503);
  const header = c.req.header("Authorization");
  const token = header?.startsWith("Bearer ") ? header.slice(7) : (c.req.query("token") ?? "");
  const account = token ? config.subscriptions.accountFor(token) : undefined;
  if (account === undefined) {
    return c.text(token ? "wrong token" : "a token is required (Authorization: Bearer, or ?token=)", 401, {
      "WWW-Authenticate": 'Bearer realm="ozen"',
    });
  }
  return { account };
}

/** Mounts the routes; call it before middleware that would authenticate `/calls/*` otherwise. */
export function mountSubscriptions(app: Hono<SubscriptionEnv>): void {
  app.get("/calls/:callSid/events", (c) => {
    const auth = authenticate(c);
    if (auth instanceof Response) return auth;
    const callSid = c.req.param("callSid");
    if (!CALL_SID.test(callSid)) return c.text("CallSid is malformed", 400);
    return c.env.CALL_SESSION.get(c.env.CALL_SESSION.idFromName(callSid)).fetch(c.req.raw);
  });

  app.get("/events", (c) => {
    const auth = authenticate(c);
    if (auth instanceof Response) return auth;
    const url = new URL(c.req.url);
    return accountHub(c.env, auth.account).fetch(new Request(`https://hub/events${url.search}`, c.req.raw));
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
