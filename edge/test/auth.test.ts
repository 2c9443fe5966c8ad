/**
 * The token check of every edge route, on real workerd: each route that needs the API token
 * answers 401 without it, with a wrong one, or with it only in `?token=` on a plain request;
 * its own status with the right one; `?token=` opens the agent event streams on a WebSocket
 * upgrade only. Refusals are counted. Without `API_TOKEN` those routes answer 503. Routes that
 * need no token (health, the live page) or a Twilio signature instead are listed too, and a scan
 * of edge/src checks that no route is missing from these tables.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_TOKEN, startTestEdge, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { refusedUpgrade } from "./transcripts.js";

/** A CallSid in Twilio's format that no call uses. */
const SID = "CA" + "a0".repeat(16);

interface TokenRoute {
  readonly method: "GET" | "POST";
  /** As declared in edge/src. */
  readonly route: string;
  readonly path: string;
  /** The status with the right token (no call or record exists behind these paths). */
  readonly okStatus: number;
  /** An agent event stream: `?token=` counts on its WebSocket upgrade. */
  readonly webSocket?: boolean;
}

const TOKEN_ROUTES: readonly TokenRoute[] = [
  { method: "GET", route: "/calls", path: "/calls", okStatus: 200 },
  { method: "GET", route: "/calls/:callSid", path: `/calls/${SID}`, okStatus: 404 },
  { method: "GET", route: "/calls/:callSid/record", path: `/calls/${SID}/record`, okStatus: 404 },
  { method: "GET", route: "/calls/:callSid/stats", path: `/calls/${SID}/stats`, okStatus: 200 },
  { method: "POST", route: "/calls/:callSid/clear", path: `/calls/${SID}/clear`, okStatus: 409 },
  // the agent's voice as a file: the call is not streaming, so 409
  { method: "POST", route: "/calls/:callSid/play", path: `/calls/${SID}/play`, okStatus: 409 },
  { method: "GET", route: "/stats", path: "/stats", okStatus: 200 },
  { method: "GET", route: "/metrics", path: "/metrics", okStatus: 200 },
  // without an upgrade the event streams answer what they hold as JSON
  { method: "GET", route: "/calls/:callSid/events", path: `/calls/${SID}/events`, okStatus: 200, webSocket: true },
  { method: "GET", route: "/events", path: "/events", okStatus: 200, webSocket: true },
];

/** Routes without the API token: open, or checked by Twilio's signature (403 without one). */
const OTHER_ROUTES = [
  { method: "GET", route: "/healthz", path: "/healthz", status: 200 },
  { method: "GET", route: "/live", path: "/live", status: 200 },
  { method: "POST", route: "/twilio/voice", path: "/twilio/voice", status: 403 },
  // a stream upgrade is checked only as an upgrade (426 otherwise): tested below
  { method: "GET", route: "/twilio/stream/:callSid", path: `/twilio/stream/${SID}`, status: 426 },
  // the benchmark's route exists only with BENCH_NAIVE=on
  { method: "GET", route: "/twilio/stream-naive/:callSid", path: `/twilio/stream-naive/${SID}`, status: 404 },
] as const;

const RIGHT = { Authorization: `Bearer ${API_TOKEN}` };
const WRONG = { Authorization: `Bearer ${API_TOKEN}x` };

let edge: TestEdge;
let noToken: TestEdge;

beforeAll(async () => {
  // nothing here reaches the runner: no call is placed
  edge = await startTestEdge({ RUNNER_URL: "ws://127.0.0.1:1/relay" });
  noToken = await startTestEdge({ RUNNER_URL: "ws://127.0.0.1:1/relay", API_TOKEN: "" });
});

afterAll(async () => {
  await edge?.close();
  await noToken?.close();
});

function request(base: TestEdge, r: { method: string; path: string }, headers: Record<string, string> = {}) {
  return fetch(base.url + r.path, { method: r.method, headers });
}

/** Opens a WebSocket and resolves once the upgrade is accepted (then closes it). */
function acceptedUpgrade(path: string, headers: Record<string, string> = {}): Promise<true> {
  const ws = new WebSocket(edge.url.replace(/^http/, "ws") + path, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.close();
      resolve(true);
    });
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade to ${path} answered ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

/** The routes edge/src declares (`app.get("/path", ...)`), as `METHOD /path`. */
function declaredRoutes(): string[] {
  const src = fileURLToPath(new URL("../src", import.meta.url));
  const files = readdirSync(src, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  const out: string[] = [];
  for (const f of files) {
    const text = readFileSync(path.join(src, f), "utf8");
    for (const m of text.matchAll(/\bapp\.(get|post|put|patch|delete|all)\(\s*"([^"]+)"/g)) {
      out.push(`${m[1]!.toUpperCase()} ${m[2]}`);
    }
  }
  return out.sort();
}

describe("the route tables", () => {
  it("list every route the Worker declares", () => {
    const tabled = [...TOKEN_ROUTES, ...OTHER_ROUTES].map((r) => `${r.method} ${r.route}`).sort();
    expect(declaredRoutes()).toEqual(tabled);
  });
});

describe.each(TOKEN_ROUTES)("$method $route", (r) => {
  it("answers 401 without a token, naming the bearer header", async () => {
    const res = await request(edge, r);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="ozen"');
    expect(await res.text()).toMatch(/^a token is required \(Authorization: Bearer/);
  });

  it("answers 401 with a wrong token, or a header that is not Bearer", async () => {
    expect((await request(edge, r, WRONG)).status).toBe(401);
    expect((await request(edge, r, { Authorization: `Basic ${API_TOKEN}` })).status).toBe(401);
  });

  it(`answers ${r.okStatus} with the right token`, async () => {
    expect((await request(edge, r, RIGHT)).status).toBe(r.okStatus);
  });

  it("answers 401 to the right token in ?token= on a request that is not a WebSocket upgrade", async () => {
    expect((await request(edge, { method: r.method, path: `${r.path}?token=${API_TOKEN}` })).status).toBe(401);
  });

  it("answers 503 when API_TOKEN is not configured, whatever the token", async () => {
    for (const headers of [{}, RIGHT]) {
      const res = await request(noToken, r, headers);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/^API_TOKEN is not configured; the .* disabled$/);
    }
  });
});

describe("WebSocket upgrades", () => {
  const streams = TOKEN_ROUTES.filter((r) => r.webSocket);
  const others = TOKEN_ROUTES.filter((r) => !r.webSocket && r.method === "GET");

  it.each(streams)("$route opens with ?token= or the bearer header, and refuses without or wrong (401)", async (r) => {
    await expect(acceptedUpgrade(`${r.path}?token=${API_TOKEN}`)).resolves.toBe(true);
    await expect(acceptedUpgrade(r.path, RIGHT)).resolves.toBe(true);
    expect(await refusedUpgrade(edge, r.path)).toBe(401);
    expect(await refusedUpgrade(edge, `${r.path}?token=wrong`)).toBe(401);
    expect(await refusedUpgrade(edge, r.path, WRONG)).toBe(401);
    expect(await refusedUpgrade(edge, `${r.path}?token=${API_TOKEN}`, WRONG)).toBe(401);
  });

  it.each(others)("$route takes no ?token= even on an upgrade (401)", async (r) => {
    expect(await refusedUpgrade(edge, `${r.path}?token=${API_TOKEN}`)).toBe(401);
  });
});

describe("routes without the API token", () => {
  it.each(OTHER_ROUTES)("$method $route answers $status without a token", async (r) => {
    expect((await request(edge, r)).status).toBe(r.status);
  });

  it("the API token opens no Twilio route: they need Twilio's signature (403)", async () => {
    expect((await request(edge, { method: "POST", path: "/twilio/voice" }, RIGHT)).status).toBe(403);
    expect(await refusedUpgrade(edge, `/twilio/stream/${SID}`, RIGHT)).toBe(403);
    expect(await refusedUpgrade(edge, `/twilio/stream/${SID}?token=${API_TOKEN}`)).toBe(403);
  });
});

describe("refusals", () => {
  it("are counted as api_bad_token in the edge metrics, one per refused request", async () => {
    const counters = async () =>
      ((await (await request(edge, { method: "GET", path: "/stats" }, RIGHT)).json()) as Record<string, number>)[
        "api_bad_token"
      ] ?? 0;
    const before = await counters();
    await request(edge, { method: "GET", path: "/calls" });
    await request(edge, { method: "GET", path: "/stats" }, WRONG);
    await refusedUpgrade(edge, "/events?token=wrong");
    await waitFor("api_bad_token to count 3 more", async () => (await counters()) === before + 3);
  });
});
