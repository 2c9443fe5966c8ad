/** Shared pieces of the edge tests: a recording runner, a local edge, waiting for conditions. */
import { decodeMulaw } from "@ozen/shared";
import type { RelayStart } from "@ozen/shared";
import { RelayServer } from "../../stt-runner/src/index.js";
import type { Engine } from "../../stt-runner/src/index.js";
import { startLocalEdge } from "../scripts/local-edge.js";
import type { LocalEdge } from "../scripts/local-edge.js";

export const AUTH = "test-auth-token";
export const API = "test-api-token";
export const PUBLIC = "http://127.0.0.1:1";
/** The relay's shared secret: the edge signs with it, the runner checks it. */
export const RELAY_SECRET = "test-relay-secret-0123456789";

export interface FedBlock {
  readonly startSample: number;
  readonly pcm: Int16Array;
}

/** An engine that keeps every block it is fed, per call. */
export class RecordingEngine implements Engine {
  readonly name = "recording";
  readonly calls = new Map<string, { start: RelayStart; blocks: FedBlock[]; ended: boolean }>();

  open(start: RelayStart) {
    const call = { start, blocks: [] as FedBlock[], ended: false };
    this.calls.set(start.callSid, call);
    return {
      feed: (pcm: Int16Array, startSample: number) => call.blocks.push({ startSample, pcm: pcm.slice() }),
      end: async () => {
        call.ended = true;
      },
    };
  }

  /** All audio the engine heard for a call, in order (asserting continuity). */
  audio(callSid: string): Int16Array {
    const blocks = this.calls.get(callSid)?.blocks ?? [];
    let at = blocks[0]?.startSample ?? 0;
    for (const b of blocks) {
      if (b.startSample !== at) throw new Error(`audio jumps from sample ${at} to ${b.startSample}`);
      at += b.pcm.length;
    }
    return Int16Array.from(blocks.flatMap((b) => [...b.pcm]));
  }
}

export async function startRunner(engine: Engine, port = 0): Promise<{ server: RelayServer; port: number }> {
  const server = new RelayServer({ engine, port, relaySecret: RELAY_SECRET, log: () => {} });
  return { server, port: await server.listen() };
}

export function startEdge(runnerPort: number, extra: Record<string, string> = {}): Promise<LocalEdge> {
  return startLocalEdge({
    verbose: false,
    vars: {
      PUBLIC_BASE_URL: PUBLIC,
      RUNNER_URL: `ws://127.0.0.1:${runnerPort}/relay`,
      TWILIO_AUTH_TOKEN: AUTH,
      API_TOKEN: API,
      INGEST_ACK: "block",
      RELAY_BACKOFF_MIN_MS: "50",
      RELAY_BACKOFF_MAX_MS: "200",
      RELAY_SECRET,
      ...extra,
    },
  });
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function callStats(edge: LocalEdge, callSid: string): Promise<Record<string, any>> {
  const res = await fetch(`${edge.url}/calls/${callSid}/stats`, { headers: { Authorization: `Bearer ${API}` } });
  return (await res.json()) as Record<string, any>;
}

/** Speech-like test audio: a sweep, so any misplaced block shows. */
export function testAudio(seconds: number): Uint8Array {
  const n = seconds * 8000;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 5)) & 0xff;
  return out;
}

export { decodeMulaw };
