/**
 * ozen check URL: the playbook's GO checks (section G) against a running edge. One simulated
 * Twilio call with real speech (signed like Twilio), its transcript events followed live through
 * the call API, then the edge's record of the call; each check printed with its value, limit and
 * verdict. Exit status 0 only when every check passes.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import * as util from "node:util";
import { MULAW_SILENCE } from "@ozen/shared";
import type { CallStartedEvent } from "@ozen/shared";
import { fail, parseCommand, positive } from "./args.js";
import { loadAudio8k } from "./audio.js";
import { evaluate } from "./check/evaluate.js";
import { CHECK } from "./commands.js";
import type { CallMeasurements, CheckReport, EdgeCallStats, ObservedPartial } from "./check/evaluate.js";
import { followEvents } from "./check/events.js";
import { DEFAULT_CHECKS, limitText, parseLimitOverride } from "./check/limits.js";
import type { CheckName, Limit } from "./check/limits.js";
import { speechOnsetFrame } from "./check/onset.js";
import { FRAME_BYTES, newIdentity, placeCall } from "./simulator.js";
import { callSpeech } from "./speech-data.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface CheckOptions {
  readonly edgeUrl: string;
  /** The edge's PUBLIC_BASE_URL, which Twilio signs; default edgeUrl. */
  readonly publicUrl?: string;
  /** Twilio's auth token, to sign the webhook and the stream upgrade. */
  readonly authToken: string;
  /** The edge's API_TOKEN, to read the call's events and stats. */
  readonly apiToken: string;
  /** 8 kHz mu-law and PCM of the speech to play. */
  readonly audio: { readonly mulaw: Uint8Array; readonly pcm: Int16Array };
  /** How to read the call's events: `auto` (WebSocket if offered, else polling) or `poll`. */
  readonly events?: "auto" | "poll";
  /** Silence after the speech, so the engine can finish, ms. */
  readonly tailMs?: number;
  readonly limits?: Partial<Record<CheckName, Limit>>;
  /** Progress lines (stderr in the CLI). */
  readonly progress?: (line: string) => void;
}

export interface CheckRun extends CheckReport {
  readonly callSid: string;
  readonly measurements: CallMeasurements;
}

async function readStats(o: CheckOptions, callSid: string): Promise<{ stats?: EdgeCallStats; error?: string }> {
  const url = `${o.edgeUrl}/calls/${encodeURIComponent(callSid)}/stats`;
  let last: { stats?: EdgeCallStats; error?: string } = {};
  // the edge finishes the call (flush, last acks) just after the caller hangs up
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const res = await fetch(url, { headers: { Authorization: `Bearer ${o.apiToken}` } });
      if (!res.ok) {
        last = { error: `GET /calls/{CallSid}/stats answered ${res.status}: ${(await res.text()).slice(0, 120)}` };
        if (res.status === 401 || res.status === 403 || res.status === 503) return last;
      } else {
        const stats = (await res.json()) as EdgeCallStats;
        last = { stats };
        if (stats.state === "ended") return last;
      }
    } catch (e) {
      last = { error: `GET /calls/{CallSid}/stats failed: ${String(e)}` };
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return last;
}

/** Refuses to spend a call on an edge that will not show its results: the call API must take the token. */
async function preflight(edgeUrl: string, apiToken: string, callSid: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${edgeUrl}/calls/${encodeURIComponent(callSid)}/stats`, {
      headers: { Authorization: `Bearer ${apiToken}` },
    });
  } catch (e) {
    throw new Error(`the edge at ${edgeUrl} does not answer: ${String(e)}`);
  }
  const body = (await res.text()).slice(0, 120);
  if (res.status === 401 || res.status === 403)
    throw new Error(`the edge refused the API token (--token): HTTP ${res.status} ${body}`);
  if (!res.ok) throw new Error(`the edge's call API answered HTTP ${res.status}: ${body}`);
}

/** Whether `url` names this machine (127.0.0.1 and the rest of 127/8, localhost, ::1). */
export function isLocalUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return false;
  }
  return host === "localhost" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The settings in a `.dev.vars` file (dotenv syntax, as wrangler reads it), or undefined when there is none. */
export function readDevVars(file: string): Record<string, string | undefined> | undefined {
  if (!existsSync(file)) return undefined;
  // util.parseEnv is Node's own dotenv reader (Node 20.12+)
  if (typeof util.parseEnv !== "function") {
    throw new Error(`reading ${file} needs Node 20.12 or later; pass --token and --auth-token instead`);
  }
  return util.parseEnv(readFileSync(file, "utf8"));
}

export interface CheckCredentials {
  readonly apiToken?: string;
  readonly authToken?: string;
  readonly publicUrl?: string;
  /** The settings that came from `.dev.vars`, to say so. */
  readonly fromDevVars: readonly string[];
}

/**
 * The edge's API token, Twilio's auth token and the public URL for a check: the command line
 * first, then the environment (OZEN_API_TOKEN or API_TOKEN, TWILIO_AUTH_TOKEN), then, for a
 * local URL only, `.dev.vars` (API_TOKEN, TWILIO_AUTH_TOKEN, PUBLIC_BASE_URL: what `make dev`
 * gave the edge). A remote edge's tokens never come from a local file.
 */
export function checkCredentials(o: {
  readonly edgeUrl: string;
  readonly flags: { readonly token?: string; readonly authToken?: string; readonly publicUrl?: string };
  readonly env: NodeJS.ProcessEnv;
  readonly devVars: Record<string, string | undefined> | undefined;
}): CheckCredentials {
  const local = isLocalUrl(o.edgeUrl) ? (o.devVars ?? {}) : {};
  const fromDevVars: string[] = [];
  const pick = (given: string | undefined, key: string): string | undefined => {
    if (given) return given;
    const v = local[key];
    if (v) fromDevVars.push(key);
    return v || undefined;
  };
  const apiToken = pick(o.flags.token ?? o.env["OZEN_API_TOKEN"] ?? o.env["API_TOKEN"], "API_TOKEN");
  const authToken = pick(o.flags.authToken ?? o.env["TWILIO_AUTH_TOKEN"], "TWILIO_AUTH_TOKEN");
  const publicUrl = pick(o.flags.publicUrl, "PUBLIC_BASE_URL");
  return {
    ...(apiToken ? { apiToken } : {}),
    ...(authToken ? { authToken } : {}),
    ...(publicUrl ? { publicUrl } : {}),
    fromDevVars,
  };
}

/** Places one call against the edge and evaluates every GO check on it. */
export async function runCheck(o: CheckOptions): Promise<CheckRun> {
  const edgeUrl = o.edgeUrl.replace(/\/$/, "");
  const onset = speechOnsetFrame(o.audio.pcm);
  const tailFrames = Math.round((o.tailMs ?? 1500) / 20);
  const played = new Uint8Array(o.audio.mulaw.length + tailFrames * FRAME_BYTES).fill(MULAW_SILENCE);
  played.set(o.audio.mulaw);

  const identity = newIdentity();
  await preflight(edgeUrl, o.apiToken, identity.callSid);
  const feed = await followEvents({ edgeUrl, callSid: identity.callSid, apiToken: o.apiToken, via: o.events });
  o.progress?.(`call ${identity.callSid}: ${(played.length / 8000).toFixed(1)} s of audio, events by ${feed.via}`);
  let framesSent = 0;
  let onsetSentAtMs: number | null = null;
  let greetingAtMs: number | null = null;
  let call;
  const answeredAtMs = performance.now();
  try {
    call = await placeCall({
      edgeUrl,
      publicUrl: o.publicUrl,
      authToken: o.authToken,
      audio: played,
      identity,
      onMessage: (m, at) => {
        if (greetingAtMs === null && (m as { event?: unknown }).event === "media") greetingAtMs = at;
      },
      onFrameSent: () => {
        if (framesSent++ === onset) onsetSentAtMs = performance.now();
      },
    });
    o.progress?.("call ended; waiting for the last events and the edge's record");
    await feed.ended(3000);
  } finally {
    await feed.close();
  }
  const { stats, error: statsError } = await readStats({ ...o, edgeUrl }, identity.callSid);

  const partials: ObservedPartial[] = [];
  let started: CallStartedEvent | undefined;
  for (const { event, receivedAtMs } of feed.events) {
    if (event.type === "partial") partials.push({ utteranceId: event.utteranceId, wallMs: event.wallMs, receivedAtMs });
    if (event.type === "call.started") started ??= event;
  }
  const measurements: CallMeasurements = {
    answerToGreetingMs: greetingAtMs === null ? null : greetingAtMs - answeredAtMs,
    greetingMs: call.greetingMs,
    onsetSentAtMs,
    partials,
    started,
    eventsVia: feed.via,
    ...(feed.error && feed.events.length === 0 ? { eventsError: feed.error } : {}),
    stats,
    ...(statsError ? { statsError } : {}),
  };
  return { callSid: identity.callSid, measurements, ...evaluate(measurements, o.limits) };
}

function show(value: CheckReport["checks"][number]["value"], unit: string): string {
  if (value === null) return "-";
  return typeof value === "number" ? `${value}${unit ? ` ${unit}` : ""}` : String(value);
}

/** The report for people: one line per check, its note under it. */
export function formatReport(run: CheckRun, edgeUrl: string): string {
  const lines = [`ozen check ${edgeUrl}  (call ${run.callSid})`];
  for (const c of run.checks) {
    const spec = DEFAULT_CHECKS[c.name];
    const limit = limitText(c.limit, c.unit);
    lines.push(
      `  ${c.pass ? "PASS" : "FAIL"}  ${spec.title.padEnd(41)} ${show(c.value, c.unit).padStart(10)}   ${limit}`,
    );
    if (c.note) lines.push(`        ${c.note}`);
  }
  const passed = run.checks.filter((c) => c.pass).length;
  lines.push(`${run.pass ? "GO" : "NO GO"}: ${passed} of ${run.checks.length} checks pass`);
  return lines.join("\n");
}

export async function check(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(CHECK, argv);
  const url = positionals[0]?.replace(/\/$/, "");
  if (!url || !/^https?:\/\//.test(url)) fail("the edge URL (http(s)://host[:port]) is required");
  const devVarsFile = values["dev-vars"] ?? path.join(repo, ".dev.vars");
  let devVars: Record<string, string | undefined> | undefined;
  try {
    devVars = isLocalUrl(url) ? readDevVars(devVarsFile) : undefined;
  } catch (e) {
    fail((e as Error).message);
  }
  const { apiToken, authToken, publicUrl, fromDevVars } = checkCredentials({
    edgeUrl: url,
    flags: { token: values.token, authToken: values["auth-token"], publicUrl: values["public-url"] },
    env: process.env,
    devVars,
  });
  const inDevVars = (key: string) => (isLocalUrl(url) ? `, or ${key} in ${devVarsFile}` : "");
  if (!apiToken) {
    fail(
      `--token (the edge's API_TOKEN) or OZEN_API_TOKEN${inDevVars("API_TOKEN")} is required to read the call's events and stats`,
    );
  }
  if (!authToken)
    fail(`--auth-token or TWILIO_AUTH_TOKEN${inDevVars("TWILIO_AUTH_TOKEN")} is required to sign like Twilio`);
  if (fromDevVars.length) console.error(`${fromDevVars.join(", ")} from ${devVarsFile}`);
  // real Hebrew from ../shared/data, else the project's own English prompt
  const audioPath = values.audio ?? callSpeech().path;
  if (!existsSync(audioPath)) fail(`no audio at ${audioPath}; pass --audio FILE`);
  const limits: Partial<Record<CheckName, Limit>> = {};
  for (const text of values.limit ?? []) {
    const r = parseLimitOverride(text);
    if ("error" in r) fail(r.error);
    limits[r.name] = r.limit;
  }
  const events = values.events ?? "auto";
  if (events !== "auto" && events !== "poll") fail(`--events is ${JSON.stringify(events)}, expected auto or poll`);
  const audio = loadAudio8k(audioPath);
  let run: CheckRun;
  try {
    run = await runCheck({
      edgeUrl: url,
      publicUrl,
      authToken,
      apiToken,
      audio,
      events,
      tailMs: positive("tail-ms", values["tail-ms"], 1500, true),
      limits,
      progress: (line) => console.error(line),
    });
  } catch (e) {
    console.error(`ozen check: no call was checked: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 2;
    return;
  }
  console.log(formatReport(run, url));
  if (values.json) {
    writeFileSync(values.json, JSON.stringify({ checks: run.checks, pass: run.pass }, null, 2) + "\n");
  }
  process.exitCode = run.pass ? 0 : 1;
}
