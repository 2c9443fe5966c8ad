/**
 * The one token check of the edge's API routes (hono middleware), named on each route it guards,
 * so the order routes are mounted in never decides which check runs:
 * - the token is `Authorization: Bearer <token>`; `?token=<token>` counts only on a WebSocket
 *   upgrade of a route that allows it (the agent event streams: browsers cannot set headers on
 *   a WebSocket), never on a plain request, where it would end up in access logs for nothing;
 * - no token, or a wrong one: 401 with `WWW-Authenticate: Bearer`, counted as `api_bad_token`
 *   in the edge metrics and logged once;
 * - `API_TOKEN` unset: 503, that part of the API is disabled.
 * Tokens are compared with `equalSecrets` (constant time). Hono's own `bearerAuth` is not used:
 * it answers 400 to a header that is not Bearer and reads no query token.
 */
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { equalSecrets } from "@ozen/shared";
import type { EdgeConfig } from "./config.js";
import type { AppEnv } from "./env.js";
import { DEFAULT_ACCOUNT } from "./events/subscription-config.js";

/** What a token opens: one part of the API each. */
export type TokenScope = "calls" | "records" | "events" | "metrics";

interface ScopeRule {
  /** Named in the 503 when `API_TOKEN` is unset. */
  readonly disabled: string;
  /** `?token=` is accepted on a WebSocket upgrade. */
  readonly queryTokenOnUpgrade: boolean;
  /** The account `token` opens here, or undefined. */
  accountFor(config: EdgeConfig, token: string): string | undefined;
}

const apiTokenOpens = (config: EdgeConfig, token: string): string | undefined =>
  equalSecrets(token, config.apiToken) ? DEFAULT_ACCOUNT : undefined;

const SCOPES: Readonly<Record<TokenScope, ScopeRule>> = {
  calls: { disabled: "the call API is disabled", queryTokenOnUpgrade: false, accountFor: apiTokenOpens },
  records: { disabled: "the records API is disabled", queryTokenOnUpgrade: false, accountFor: apiTokenOpens },
  metrics: { disabled: "the metrics endpoint is disabled", queryTokenOnUpgrade: false, accountFor: apiTokenOpens },
  events: {
    disabled: "the event streams are disabled",
    queryTokenOnUpgrade: true,
    accountFor: (config, token) => config.subscriptions.accountFor(token),
  },
};

/** Adds one to an edge counter, off the request's path. */
export function countEdge(c: Context<AppEnv>, name: string): void {
  const stub = c.env.EDGE_METRICS.get(c.env.EDGE_METRICS.idFromName("global"));
  c.executionCtx.waitUntil(stub.fetch(`https://metrics/incr?name=${encodeURIComponent(name)}`, { method: "POST" }));
}

/** Counts and logs a refused request (no request content: it may hold tokens). */
export function logRefusal(c: Context<AppEnv>, counter: string, why: string): void {
  countEdge(c, counter);
  console.warn(
    JSON.stringify({ level: "warn", msg: "request refused", counter, why, path: new URL(c.req.url).pathname }),
  );
}

function isWebSocketUpgrade(c: Context<AppEnv>): boolean {
  return c.req.header("Upgrade")?.toLowerCase() === "websocket";
}

/** The token the request carries where `rule` looks for one; "" when none. */
function presentedToken(c: Context<AppEnv>, rule: ScopeRule): string {
  const bearer = /^Bearer +(\S+) *$/i.exec(c.req.header("Authorization") ?? "")?.[1];
  if (bearer) return bearer;
  if (rule.queryTokenOnUpgrade && isWebSocketUpgrade(c)) return c.req.query("token") ?? "";
  return "";
}

/** Middleware: lets the request on with `account` set when its token opens `scope`; else 401 (or 503). */
export function requireToken(scope: TokenScope): MiddlewareHandler<AppEnv> {
  const rule = SCOPES[scope];
  const how = rule.queryTokenOnUpgrade
    ? "Authorization: Bearer ..., or ?token= on the WebSocket upgrade"
    : "Authorization: Bearer ...";
  return createMiddleware<AppEnv>(async (c, next) => {
    const config = c.get("config");
    if (!config.apiToken) return c.text(`API_TOKEN is not configured; ${rule.disabled}`, 503);
    const token = presentedToken(c, rule);
    const account = token ? rule.accountFor(config, token) : undefined;
    if (account === undefined) {
      logRefusal(c, "api_bad_token", token ? "wrong token" : "no token");
      return c.text(token ? "wrong token" : `a token is required (${how})`, 401, {
        "WWW-Authenticate": 'Bearer realm="ozen"',
      });
    }
    c.set("account", account);
    c.set("mayControl", config.subscriptions.mayControl(token));
    await next();
  });
}
