/**
 * The live page (`GET /live`) in headless Chromium (Debian's `chromium`, driven by
 * playwright-core): it subscribes to `/events` with the token from the URL fragment and shows a
 * call's partials within a second of the runner emitting them, right-to-left for Hebrew, then its
 * finals and a latency timeline. Skipped, saying why, where chromium is not installed.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { API_TOKEN, TwilioCall, startTestEdge, testAudio, waitFor } from "./helpers.js";
import type { TestEdge } from "./helpers.js";
import { WordEngine, startTranscribingRunner } from "./transcripts.js";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`live page test skipped: ${CHROMIUM} is not installed (apt-get install chromium)`);

let runner: Awaited<ReturnType<typeof startTranscribingRunner>>;
let edge: TestEdge;
let profile: string;
let browser: BrowserContext;
let page: Page;

beforeAll(async () => {
  if (!hasChromium) return;
  runner = await startTranscribingRunner(new WordEngine(5));
  edge = await startTestEdge({ RUNNER_URL: `ws://127.0.0.1:${runner.port}/relay` });
  profile = await mkdtemp(path.join(tmpdir(), "ozen-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

afterAll(async () => {
  await browser?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await edge?.close();
  await runner?.close();
});

interface Shown {
  readonly text: string;
  readonly dir: string;
  readonly wallMs: number;
  readonly shownMs: number;
}

it.skipIf(!hasChromium)(
  "shows a call's partials within a second of their emission, right-to-left for Hebrew, then finals and a timeline",
  async () => {
    await page.goto(`${edge.url}/live#token=${API_TOKEN}`);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "live");
    // every partial the page renders, with the time it rendered it
    await page.evaluate(() => {
      const seen: unknown[] = [];
      (window as unknown as { seen: unknown[] }).seen = seen;
      new MutationObserver((records) => {
        for (const r of records) {
          const el = r.target as HTMLElement;
          if (r.attributeName !== "data-shown-ms" || !el.classList.contains("partial")) continue;
          seen.push({
            text: el.textContent,
            dir: el.getAttribute("dir"),
            wallMs: Number(el.getAttribute("data-wall-ms")),
            shownMs: Number(el.getAttribute("data-shown-ms")),
          });
        }
      }).observe(document.getElementById("calls")!, { subtree: true, attributes: true });
    });

    const call = await TwilioCall.start(edge);
    expect(await call.play(testAudio(100, 21), { speed: 1 })).toBe(100); // 2 s, real time
    expect(await call.hangUp()).toBe(1000);
    const section = page.locator(`section[data-call="${call.callSid}"]`);
    await waitFor("the call's end on the page", async () => (await section.getAttribute("class"))?.includes("ended"));

    const shown = (await page.evaluate(() => (window as unknown as { seen: Shown[] }).seen)) as Shown[];
    expect(shown.length).toBeGreaterThanOrEqual(4);
    for (const s of shown) {
      expect(s.shownMs - s.wallMs, `partial "${s.text}" shown after`).toBeLessThan(1000);
      expect(s.dir).toBe("rtl");
    }
    const finals = section.locator("p.final");
    expect(await finals.count()).toBe(4);
    expect(await finals.first().getAttribute("dir")).toBe("rtl");
    expect(await finals.first().textContent()).toContain("מילה0");
    expect(await section.locator("svg.timeline circle").count()).toBeGreaterThanOrEqual(shown.length);
  },
);
