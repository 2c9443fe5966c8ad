/**
 * The relay to a private Cloud Run runner (RUNNER_AUTH=google-id-token), on real workerd: the edge
 * mints a Google ID token from the service account's key at a token endpoint that speaks Google's
 * protocol (`google-front.ts`), and Cloud Run's front end (a stand-in that checks the token as
 * the real one does) lets the upgrade through to a real runner only with it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { FakeTokenEndpoint, IamFrontEnd, verifyJwt } from "./google-front.js";
import type { ServiceAccount } from "./google-front.js";
import {
  RecordingEngine,
  TwilioCall,
  expectEngineHeard,
  sleep,
  startRunner,
  startTestEdge,
  testAudio,
  waitFor,
  PUBLIC_BASE_URL,
  AUTH_TOKEN,
} from "./helpers.js";
import type { TestEdge, TestRunner } from "./helpers.js";
import { computeTwilioSignature } from "@ozen/shared";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  readonly tokens: FakeTokenEndpoint;
  readonly account: ServiceAccount;
  readonly runner: TestRunner;
  readonly front: IamFrontEnd;
  readonly edge: TestEdge;
}

/** A runner behind Cloud Run's front end, the token endpoint, and an edge set to reach it. */
async function rig(o: { lifetimeS?: number; auth?: "google-id-token" | "none" } = {}): Promise<Rig> {
  const tokens = await FakeTokenEndpoint.start();
  cleanups.push(() => tokens.close());
  if (o.lifetimeS !== undefined) tokens.lifetimeS = o.lifetimeS;
  const account = tokens.newServiceAccount();
  const runner = await startRunner(new RecordingEngine());
  cleanups.push(() => runner.close());
  const front = await IamFrontEnd.start({
    runnerPort: runner.port,
    googleKey: tokens.googlePublicKey,
    invoker: account.email,
  });
  cleanups.push(() => front.close());
  const edge = await startTestEdge({
    RUNNER_URL: `ws://127.0.0.1:${front.port}/relay`,
    RUNNER_AUTH: o.auth ?? "google-id-token",
    RUNNER_SA_KEY: account.keyJson,
  });
  cleanups.push(() => edge.close());
  return { tokens, account, runner, front, edge };
}

/** A whole call of `frames` frames, played fast; resolves once the engine heard all of it. */
async function wholeCall(r: Rig, frames = 20, seed = 1): Promise<TwilioCall> {
  const call = await TwilioCall.start(r.edge);
  expect(await call.play(testAudio(frames, seed), { speed: 4 })).toBe(frames);
  expect(await call.hangUp()).toBe(1000);
  await expectEngineHeard(r.runner.engine, call);
  return call;
}

describe("relay to a private Cloud Run runner (RUNNER_AUTH=google-id-token)", () => {
  it("sends a Google ID token for the runner's origin on the upgrade; the front end lets it through", async () => {
    const r = await rig();
    const call = await wholeCall(r);

    expect(r.tokens.requests).toHaveLength(1);
    const req = r.tokens.requests[0]!;
    expect(req.problems).toEqual([]);
    expect(req.grantType).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    expect(req.header).toMatchObject({ alg: "RS256", kid: "0123456789abcdef" });
    expect(req.claims).toMatchObject({
      iss: r.account.email,
      sub: r.account.email,
      aud: r.tokens.tokenUri,
      target_audience: `http://127.0.0.1:${r.front.port}`,
    });
    expect(r.front.upgrades).toEqual([{ token: req.idToken, admitted: true, why: "" }]);
    const s = await r.edge.callStats(call.callSid);
    expect(s.relay).toMatchObject({ connects: 1, connectFailures: 0, blocksDropped: 0, lostAtEnd: 0 });
  });

  it("gets nowhere without the token: the front end answers 403 (RUNNER_AUTH=none)", async () => {
    const r = await rig({ auth: "none" });
    const call = await TwilioCall.start(r.edge);
    call.sendMedia(testAudio(5, 3));
    await waitFor("refused upgrades", async () => (await r.edge.callStats(call.callSid)).relay.connectFailures >= 2);
    expect(r.front.upgrades.length).toBeGreaterThanOrEqual(2);
    expect(r.front.upgrades.every((u) => !u.admitted && u.why === "no bearer token")).toBe(true);
    expect(r.runner.engine.sessions).toHaveLength(0);
    expect(r.tokens.requests).toHaveLength(0);
    call.terminate();
  });

  it("asks the token endpoint once for many calls (one token per isolate, cached)", async () => {
    const r = await rig();
    await Promise.all([1, 2, 3, 4].map((seed) => wholeCall(r, 10, seed)));
    await wholeCall(r, 10, 5);
    expect(r.tokens.requests).toHaveLength(1);
    expect(r.front.admitted).toHaveLength(5);
    expect(new Set(r.front.admitted.map((u) => u.token))).toEqual(new Set([r.tokens.requests[0]!.idToken]));
  });

  it("refreshes the token ahead of its expiry, without holding up a call", async () => {
    // valid 302 s: the edge refreshes with less than 300 s left, i.e. 2 s after it was issued
    const r = await rig({ lifetimeS: 302 });
    await wholeCall(r, 10, 1);
    const first = r.tokens.issued[0]!.idToken;
    await sleep(2500);
    // this call goes out at once with the first token (still valid 5 minutes); a refresh starts
    await wholeCall(r, 10, 2);
    await waitFor("the refresh", () => r.tokens.issued.length === 2);
    const second = r.tokens.issued[1]!.idToken;
    await wholeCall(r, 10, 3);
    expect(r.front.admitted.map((u) => u.token)).toEqual([first, first, second]);
    expect(verifyJwt(second!, r.tokens.googlePublicKey).ok).toBe(true);
    expect(r.tokens.requests).toHaveLength(2);
  });

  it("keeps the call's audio while the token endpoint is down, retrying with backoff, then delivers all of it", async () => {
    const r = await rig();
    r.tokens.down = true;
    const call = await TwilioCall.start(r.edge);
    const playing = call.play(testAudio(60, 9), { speed: 2 });
    await waitFor(
      "failed dials while no token can be had",
      async () => (await r.edge.callStats(call.callSid)).relay.connectFailures >= 2,
    );
    expect(r.front.upgrades).toHaveLength(0);
    const asked = r.tokens.requests.length;
    expect(asked).toBeGreaterThanOrEqual(1);
    r.tokens.down = false;
    expect(await playing).toBe(60);
    expect(await call.hangUp()).toBe(1000);
    await expectEngineHeard(r.runner.engine, call);
    const s = await r.edge.callStats(call.callSid);
    expect(s.relay).toMatchObject({ connects: 1, blocksDropped: 0, lostAtEnd: 0 });
    // backoff: far fewer token requests than the link's 50-200 ms dials
    expect(r.tokens.requests.length).toBeLessThan(s.relay.connectFailures + 2);
    expect(r.edge.logs.some((l) => l.includes("no Google ID token for the runner"))).toBe(true);
  });

  it("refuses a key it cannot use at start: every request answers 500 naming RUNNER_SA_KEY", async () => {
    const tokens = await FakeTokenEndpoint.start();
    cleanups.push(() => tokens.close());
    const good = JSON.parse(tokens.newServiceAccount().keyJson) as Record<string, string>;
    const cases: [string, RegExp][] = [
      ["{not json", /RUNNER_SA_KEY is not JSON/],
      [
        JSON.stringify({
          ...good,
          private_key: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
        }),
        /RUNNER_SA_KEY private_key is not a PEM/,
      ],
      [JSON.stringify({ ...good, type: "authorized_user" }), /RUNNER_SA_KEY has type "authorized_user"/],
    ];
    for (const [key, message] of cases) {
      const edge = await startTestEdge({
        RUNNER_URL: "ws://127.0.0.1:1/relay",
        RUNNER_AUTH: "google-id-token",
        RUNNER_SA_KEY: key,
      });
      try {
        const url = `${PUBLIC_BASE_URL}/twilio/voice`;
        const params = { CallSid: "CAbadkey" };
        const res = await fetch(`${edge.url}/twilio/voice`, {
          method: "POST",
          headers: {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": await computeTwilioSignature(AUTH_TOKEN, url, params),
          },
          body: new URLSearchParams(params).toString(),
        });
        expect(res.status).toBe(500);
        const text = await res.text();
        expect(text).toMatch(message);
        // the message never quotes the key
        expect(text).not.toContain(good["private_key"]!.split("\n")[1]);
      } finally {
        await edge.close();
      }
    }
  });
});
