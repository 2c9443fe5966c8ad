/**
 * A small Speech service on loopback, for the tests and `ozen bench runner` (Google cannot be
 * reached from them): grpc-js serving Google's own v1 and v2
 * StreamingRecognize definitions, loaded from the protos inside `@google-cloud/speech`. It says
 * "שלום" as an interim once 300 ms of audio arrived and "שלום עולם" as the final when the client
 * half-closes; a model in `unsupportedModels` is refused the way v1 refuses a model without the
 * language, and one in `modelsMissingInLocation` the way v2 refuses a model its recognizer's
 * location does not serve.
 */
import { createRequire } from "node:module";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const require = createRequire(import.meta.url);
// the client looks for a GCE metadata server before it needs credentials; there is none here
process.env["METADATA_SERVER_DETECTION"] = "none";
const protos = path.join(path.dirname(require.resolve("@google-cloud/speech/package.json")), "build", "protos");
// google/api, google/rpc, google/longrunning: the common protos ship with google-gax, the client's transport
const gaxMain = require.resolve("google-gax", { paths: [protos] }); // .../google-gax/build/src/index.js
const commonProtos = path.join(gaxMain.slice(0, gaxMain.lastIndexOf(`${path.sep}build${path.sep}`)), "build", "protos");

export interface Seen {
  api: "v1" | "v2";
  requests: any[];
  /** The client half-closed or cancelled the stream: it is over. */
  ended: boolean;
}

/** A StreamingRecognize that says "שלום" as an interim after 300 ms of audio and finals it on half-close. */
export interface SpeechBehaviour {
  unsupportedModels: Set<string>;
  /**
   * v2 models this service's locations do not serve: refused with Google's INVALID_ARGUMENT
   * `The model "M" does not exist in the location named "L"`, L from the request's recognizer.
   */
  modelsMissingInLocation?: Set<string>;
  /**
   * Word mode: the test's audio carries its block number in every sample; the service answers
   * each 100 ms request at once with a final `w{block}` ending at that request's stream time.
   */
  wordPerBlock: boolean;
  /** Fail the next stream after this many audio requests (once), with `failWith` (default UNAVAILABLE). */
  failOnceAfterRequests: number | undefined;
  failWith?: { code: grpc.status; details: string };
  /** Says nothing at all (no interim, no final, not even at half-close): a stream that hangs. */
  silent?: boolean;
  /**
   * Finals at set points of each stream: after `afterRequests` audio requests, a final `text`
   * ending at that request's stream time (consumed in order, across streams).
   */
  scriptedFinals?: { afterRequests: number; text: string }[];
  /** Whether a half-close gets the final "שלום עולם" (default true). */
  finalOnHalfClose?: boolean;
}

function handler(api: "v1" | "v2", seen: Seen[], behaviour: () => SpeechBehaviour) {
  return (call: grpc.ServerDuplexStream<any, any>) => {
    const s: Seen = { api, requests: [], ended: false };
    call.on("cancelled", () => (s.ended = true));
    seen.push(s);
    let bytes = 0;
    let interimSent = false;
    call.on("data", (req: any) => {
      s.requests.push(req);
      if (s.requests.length === 1) {
        const model: string = req.streaming_config?.config?.model ?? "";
        if (behaviour().unsupportedModels.has(model)) {
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details:
              "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
          });
        } else if (api === "v2" && behaviour().modelsMissingInLocation?.has(model)) {
          const location = /\/locations\/([^/]+)\//.exec(req.recognizer ?? "")?.[1] ?? "global";
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details: `The model "${model}" does not exist in the location named "${location}".`,
          });
        }
        return;
      }
      const audio: Buffer | undefined = api === "v1" ? req.audio_content : req.audio;
      bytes += audio?.length ?? 0;
      const b = behaviour();
      if (b.failOnceAfterRequests !== undefined && s.requests.length - 1 >= b.failOnceAfterRequests) {
        b.failOnceAfterRequests = undefined;
        call.emit(
          "error",
          b.failWith ?? { code: grpc.status.UNAVAILABLE, details: "The service is currently unavailable." },
        );
        b.failWith = undefined;
        return;
      }
      if (b.silent) return;
      const scripted = b.scriptedFinals?.[0];
      if (scripted && s.requests.length - 1 >= scripted.afterRequests) {
        b.scriptedFinals!.shift();
        const seconds = (api === "v1" ? bytes / 2 : bytes) / 8000;
        const end = api === "v1" ? "result_end_time" : "result_end_offset";
        call.write({
          results: [
            {
              alternatives: [{ transcript: scripted.text, confidence: 0.9 }],
              is_final: true,
              [end]: { seconds: Math.floor(seconds), nanos: Math.round((seconds % 1) * 1e9) },
            },
          ],
        });
        return;
      }
      if (b.wordPerBlock && audio && audio.length >= 4) {
        const mulaw = s.requests[0].streaming_config?.config;
        const isMulaw = (mulaw?.encoding ?? mulaw?.explicit_decoding_config?.encoding) === "MULAW";
        const block = readWordBlock(audio, isMulaw);
        const seconds = (isMulaw ? bytes : bytes / 2) / 8000;
        const end = api === "v1" ? "result_end_time" : "result_end_offset";
        call.write({
          results: [
            {
              alternatives: [{ transcript: `w${block} ` }],
              is_final: true,
              [end]: { seconds: Math.floor(seconds), nanos: Math.round((seconds % 1) * 1e9) },
            },
          ],
        });
        return;
      }
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
      s.ended = true;
      const b = behaviour();
      if (b.wordPerBlock || b.silent || b.finalOnHalfClose === false) {
        call.end();
        return;
      }
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

export interface SpeechServer {
  readonly port: number;
  readonly seen: Seen[];
  readonly behaviour: SpeechBehaviour;
  unsupportedModels: Set<string>;
  close(): void;
}

export async function startSpeechServer(): Promise<SpeechServer> {
  const seen: Seen[] = [];
  const state: SpeechBehaviour = {
    unsupportedModels: new Set<string>(),
    wordPerBlock: false,
    failOnceAfterRequests: undefined,
  };
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
  const server = new grpc.Server();
  server.addService(v1.Speech.service, { StreamingRecognize: handler("v1", seen, () => state) });
  server.addService(v2.Speech.service, { StreamingRecognize: handler("v2", seen, () => state) });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    seen,
    behaviour: state,
    get unsupportedModels() {
      return state.unsupportedModels;
    },
    set unsupportedModels(v: Set<string>) {
      state.unsupportedModels = v;
    },
    close: () => server.forceShutdown(),
  };
}

/**
 * Word-mode audio: block k carries k in its first two samples as two 4-bit digits times 2048,
 * which survive mu-law's quantization (the rest is silence). Up to 256 blocks.
 */
export function wordBlock(k: number, samples = 800): Int16Array {
  const pcm = new Int16Array(samples);
  pcm[0] = (k >> 4) * 2048;
  pcm[1] = (k & 15) * 2048;
  return pcm;
}

function g711(code: number): number {
  const u = ~code & 0xff;
  const mag = ((((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4)) - 0x84;
  return u & 0x80 ? -mag : mag;
}

function readWordBlock(audio: Buffer, mulaw: boolean): number {
  const sample = (i: number) => (mulaw ? g711(audio[i]!) : audio.readInt16LE(i * 2));
  return Math.round(sample(0) / 2048) * 16 + Math.round(sample(1) / 2048);
}
