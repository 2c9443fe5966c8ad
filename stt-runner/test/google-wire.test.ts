/**
 * The Google engine on the wire: the official `@google-cloud/speech` client, over an insecure
 * loopback channel, against a gRPC server that loads Google's own protos from the package. It
 * proves the requests the engine writes are what Google's service definitions accept, in v1 and
 * v2, and that results and errors come back through the client as the session expects.
 */
import { createRequire } from "node:module";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayStart } from "@ozen/shared";
import { loadGoogleConfig } from "../src/engines/google/config.js";
import { GoogleEngine } from "../src/engines/google/engine.js";
import type { EngineFinal, EngineInterim } from "../src/engines/engine.js";

const require = createRequire(import.meta.url);
// the client looks for a GCE metadata server before it needs credentials; there is none here
process.env["METADATA_SERVER_DETECTION"] = "none";
const protos = path.join(path.dirname(require.resolve("@google-cloud/speech/package.json")), "build", "protos");
// google/api, google/rpc, google/longrunning: the common protos ship with google-gax, the client's transport
const gaxMain = require.resolve("google-gax", { paths: [protos] }); // .../google-gax/build/src/index.js
const commonProtos = path.join(gaxMain.slice(0, gaxMain.lastIndexOf(`${path.sep}build${path.sep}`)), "build", "protos");

interface Seen {
  api: "v1" | "v2";
  requests: any[];
}

/** A StreamingRecognize that says "שלום" as an interim after 300 ms of audio and finals it on half-close. */
function handler(api: "v1" | "v2", seen: Seen[], unsupported: () => ReadonlySet<string>) {
  return (call: grpc.ServerDuplexStream<any, any>) => {
    const s: Seen = { api, requests: [] };
    seen.push(s);
    let bytes = 0;
    let interimSent = false;
    call.on("data", (req: any) => {
      s.requests.push(req);
      if (s.requests.length === 1) {
        if (unsupported().has(req.streaming_config?.config?.model ?? "")) {
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details:
              "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
          });
        }
        return;
      }
      bytes += (api === "v1" ? req.audio_content : req.audio)?.length ?? 0;
      const samples = api === "v1" ? bytes / 2 : bytes; // v1 LINEAR16, v2 MULAW in these tests
      if (!interimSent && samples >= 2400) {
        interimSent = true;
        const end = api === "v1" ? "result_end_time" : "result_end_offset";
        call.write({
          results: [
            {
              alternatives: [{ transcript: "שלום" }],
              is_final: false,
              stability: 0.8,
              [end]: { seconds: 0, nanos: 300e6 },
            },
          ],
        });
      }
    });
    call.on("end", () => {
      const end = api === "v1" ? "result_end_time" : "result_end_offset";
      const seconds = (api === "v1" ? bytes / 2 : bytes) / 8000;
      call.write({
        results: [
          {
            alternatives: [{ transcript: "שלום עולם", confidence: 0.93 }],
            is_final: true,
            [end]: { seconds: Math.floor(seconds), nanos: Math.round((seconds % 1) * 1e9) },
          },
        ],
      });
      call.end();
    });
    call.on("error", () => {});
  };
}

let server: grpc.Server;
let port: number;
const seen: Seen[] = [];
let unsupportedModels = new Set<string>();

beforeAll(async () => {
  const load = (file: string) =>
    grpc.loadPackageDefinition(
      protoLoader.loadSync(file, {
        includeDirs: [protos, commonProtos],
        keepCase: true,
        longs: Number,
        enums: String,
        defaults: false,
      }),
    ) as any;
  const v1 = load("google/cloud/speech/v1/cloud_speech.proto").google.cloud.speech.v1;
  const v2 = load("google/cloud/speech/v2/cloud_speech.proto").google.cloud.speech.v2;
  server = new grpc.Server();
  server.addService(v1.Speech.service, { StreamingRecognize: handler("v1", seen, () => unsupportedModels) });
  server.addService(v2.Speech.service, { StreamingRecognize: handler("v2", seen, () => unsupportedModels) });
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
});

afterAll(() => server?.forceShutdown());

const start: RelayStart = {
  v: 1,
  type: "start",
  callSid: "CA1",
  streamSid: "MZ1",
  accountSid: "AC1",
  sampleRateHz: 8000,
  encoding: "pcm16le",
  blockMs: 100,
  tracks: ["inbound"],
  customParameters: { ozen_phrases: "אוזן|Twilio" },
  resumeFromSeq: 0,
};

async function runCall(env: Record<string, string>) {
  const engine = new GoogleEngine(
    loadGoogleConfig({ GOOGLE_ENDPOINT: `127.0.0.1:${port}`, GOOGLE_INSECURE: "true", ...env }),
  );
  const interims: EngineInterim[] = [];
  const finals: EngineFinal[] = [];
  const failures: unknown[] = [];
  const session = engine.open(start, {
    interim: (r) => interims.push(r),
    final: (r) => finals.push(r),
    failed: (f) => failures.push(f),
  });
  for (let i = 0; i < 5; i++) session.feed(new Int16Array(800).fill(i * 100), i * 800);
  const deadline = Date.now() + 5000;
  while (interims.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await session.end();
  await engine.close();
  return { interims, finals, failures };
}

describe("Google engine on the wire (official client, Google's protos)", () => {
  it("v1: config first, LINEAR16 audio in 100 ms requests, interim then final on half-close", async () => {
    const before = seen.length;
    const { interims, finals, failures } = await runCall({});
    const s = seen[before]!;
    expect(s.api).toBe("v1");
    const config = s.requests[0].streaming_config;
    expect(config.interim_results).toBe(true);
    expect(config.config).toMatchObject({
      encoding: "LINEAR16",
      sample_rate_hertz: 8000,
      language_code: "he-IL",
      model: "telephony",
      enable_automatic_punctuation: false,
      speech_contexts: [{ phrases: ["אוזן", "Twilio"], boost: 10 }],
    });
    expect(s.requests[0].audio_content ?? null).toBeNull();
    expect(s.requests.slice(1).map((r: any) => r.audio_content.length)).toEqual([1600, 1600, 1600, 1600, 1600]);
    expect(interims[0]).toEqual({ segments: [{ text: "שלום", stability: expect.closeTo(0.8, 5) }], audioEndMs: 300 });
    expect(finals).toEqual([
      { text: "שלום עולם", confidence: expect.closeTo(0.93, 5), audioStartMs: 0, audioEndMs: 500 },
    ]);
    expect(failures).toEqual([]);
  });

  it("v2: recognizer and explicit MULAW decoding first, one byte a sample after", async () => {
    const before = seen.length;
    const { finals } = await runCall({ GOOGLE_API: "v2", GOOGLE_PROJECT: "ozen-test", GOOGLE_ENCODING: "MULAW" });
    const s = seen[before]!;
    expect(s.api).toBe("v2");
    expect(s.requests[0].recognizer).toBe("projects/ozen-test/locations/global/recognizers/_");
    expect(s.requests[0].streaming_config.config).toMatchObject({
      explicit_decoding_config: { encoding: "MULAW", sample_rate_hertz: 8000, audio_channel_count: 1 },
      language_codes: ["iw-IL"],
      model: "telephony",
    });
    expect(s.requests[0].streaming_config.streaming_features.interim_results).toBe(true);
    expect(s.requests.slice(1).map((r: any) => r.audio.length)).toEqual([800, 800, 800, 800, 800]);
    expect(finals[0]).toMatchObject({ text: "שלום עולם", audioEndMs: 500 });
  });

  it("moves to the next model when the service answers model-not-supported through the client", async () => {
    unsupportedModels = new Set(["telephony"]);
    const before = seen.length;
    const { finals } = await runCall({ GOOGLE_MODELS: "telephony,latest_long" });
    unsupportedModels = new Set();
    const models = seen.slice(before).map((s) => s.requests[0]?.streaming_config?.config?.model);
    expect(models.slice(0, 2)).toEqual(["telephony", "latest_long"]);
    expect(finals.map((f) => f.text)).toEqual(["שלום עולם"]);
  });
});
