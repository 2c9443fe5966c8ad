/**
 * ozen demo: the whole local stack on this machine with nothing to configure: the edge on
 * workerd, the runner beside it, and one simulated Twilio call with real speech. Prints what the
 * caller's side sees and the call's record from the edge.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { RelayServer, nullEngine } from "@ozen/stt-runner";
import { startLocalEdge } from "../../edge/scripts/local-edge.js";
import { fail } from "./args.js";
import { loadAudio8k } from "./audio.js";
import { placeCall } from "./simulator.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export async function demo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { audio: { type: "string" } } });
  const audioPath = values.audio ?? path.resolve(repo, "../shared/data/he/dialog/hebrew_short.wav");
  if (!existsSync(audioPath)) fail(`no audio at ${audioPath}; pass --audio FILE`);
  const audio = loadAudio8k(audioPath);
  const runner = new RelayServer({ engine: nullEngine, port: 0 });
  const runnerPort = await runner.listen();
  const auth = "demo-auth-token";
  const edge = await startLocalEdge({
    verbose: false,
    vars: {
      PUBLIC_BASE_URL: "http://127.0.0.1:8787",
      RUNNER_URL: `ws://127.0.0.1:${runnerPort}/relay`,
      TWILIO_AUTH_TOKEN: auth,
      API_TOKEN: "demo-api-token",
      INGEST_ACK: "block",
    },
  });
  console.log(`edge on workerd at ${edge.url}, runner (null engine) on port ${runnerPort}`);
  console.log(
    `calling with ${path.basename(audioPath)} (${(audio.durationMs / 1000).toFixed(1)} s, 8 kHz mu-law), real time...`,
  );
  const t0 = performance.now();
  let acks = 0;
  const result = await placeCall({
    edgeUrl: edge.url,
    publicUrl: "http://127.0.0.1:8787",
    authToken: auth,
    audio: audio.mulaw,
    onMessage: (m) => {
      const e = m as { event?: string; mark?: { name?: string } };
      if (e.event === "mark" && e.mark?.name?.startsWith("ozen-ack:")) {
        if (++acks % 10 === 0)
          console.log(
            `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${acks} blocks of 100 ms relayed`,
          );
        return;
      }
      console.log(
        `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  edge -> caller: ${e.event}${e.mark ? ` ${e.mark.name}` : ""}`,
      );
    },
  });
  const stats = await (
    await fetch(`${edge.url}/calls/${result.callSid}/stats`, { headers: { Authorization: "Bearer demo-api-token" } })
  ).json();
  console.log(
    `greeting heard ${result.greetingMs?.toFixed(1)} ms after start; runner got ${runner.counters.blocks} blocks`,
  );
  console.log("the call's record at the edge:");
  console.log(JSON.stringify(stats, null, 2));
  await edge.close();
  await runner.close();
}
