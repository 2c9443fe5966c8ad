/**
 * One runner instance as its own process, for the load-balancer tests: a real RelayServer whose
 * engine is the deterministic `WordEngine` (one word per block, a final every 5 blocks of call
 * audio), through the transcript policy, behind the relay credential. It drains on SIGTERM as
 * the real runner does (`stt-runner/src/main.ts`) and dies on SIGKILL with its sockets.
 *
 *   node --import tsx edge/test/word-runner.ts
 *   env: PORT, RELAY_SECRET, OZEN_MAX_CALLS (unset: unlimited), RESUME_GRACE_MS, RUNNER_NAME
 *
 * Stdout, one JSON object a line: `{"ev":"listening","port"}`, then per call `session_opened` and
 * `session_closed` (`callSid`, `atMs` wall time), so a test sees when an instance holds a call's
 * engine session and when it let it go.
 */
import type { RelayStart } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";
import { WordEngine } from "./word-engine.js";

const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ ...o, atMs: Date.now() })}\n`);

const words = new WordEngine(5);
/** The word engine, saying when each call's session opens and closes. */
const engine: Engine = {
  name: words.name,
  open(start: RelayStart, listener: EngineListener): EngineSession {
    const session = words.open(start, listener);
    say({ ev: "session_opened", callSid: start.callSid, resumeFromSeq: start.resumeFromSeq });
    return {
      feed: (pcm, startSample) => session.feed(pcm, startSample),
      get committedSample() {
        return session.committedSample;
      },
      end: async () => {
        await session.end();
        say({ ev: "session_closed", callSid: start.callSid });
      },
    };
  },
};

const env = process.env;
const server = new RelayServer({
  engine,
  port: Number(env["PORT"] ?? 0),
  relaySecret: env["RELAY_SECRET"]!,
  ...(env["OZEN_MAX_CALLS"] ? { maxCalls: Number(env["OZEN_MAX_CALLS"]) } : {}),
  ...(env["RESUME_GRACE_MS"] ? { resumeGraceMs: Number(env["RESUME_GRACE_MS"]) } : {}),
  log: (level, msg, fields) => {
    if (level !== "info") process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
  },
  listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
});
const port = await server.listen();
say({ ev: "listening", port, name: env["RUNNER_NAME"] ?? "" });
process.once("SIGTERM", () => {
  say({ ev: "draining", activeCalls: server.activeCalls });
  void server.drain(8000).then(() => {
    say({ ev: "exiting" });
    process.exit(0);
  });
});
