/**
 * The Google engine: one official `@google-cloud/speech` client per runner (one gRPC channel,
 * one HTTP/2 connection multiplexing every call's stream), one `GoogleSession` per call.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import speech from "@google-cloud/speech";
import { readSettings } from "@ozen/shared";
import type { EngineProfile, RelayStart, SettingsEnv } from "@ozen/shared";
import type { Engine, EngineListener, EngineSession } from "../engine.js";
import { CREDENTIAL_SETTINGS, callPhrases, punctuates } from "./config.js";
import type { GoogleConfig } from "./config.js";
import { GoogleSession } from "./session.js";
import type { SpeechStream } from "./session.js";

/**
 * Where Application Default Credentials would come from, or an error a person can act on.
 * Checked at start so a missing credential is a clear message, not a failed first call.
 */
export function findCredentials(env: SettingsEnv): { source: string } | { error: string } {
  const s = readSettings(CREDENTIAL_SETTINGS, env);
  const file = s.GOOGLE_APPLICATION_CREDENTIALS;
  if (file) {
    return existsSync(file)
      ? { source: `GOOGLE_APPLICATION_CREDENTIALS (${path.basename(file)})` }
      : { error: `GOOGLE_APPLICATION_CREDENTIALS points to ${file}, which does not exist` };
  }
  const gcloud = path.join(
    s.CLOUDSDK_CONFIG ?? path.join(os.homedir(), ".config", "gcloud"),
    "application_default_credentials.json",
  );
  if (existsSync(gcloud)) return { source: "gcloud application-default credentials" };
  if (s.K_SERVICE || s.GCE_METADATA_HOST) return { source: "the Cloud Run / GCE metadata server" };
  return {
    error:
      "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service account key, run " +
      "`gcloud auth application-default login`, or run on Cloud Run with a service account",
  };
}

interface StreamingClient {
  _streamingRecognize(options?: unknown): SpeechStream;
  close(): Promise<void>;
}

/** The session counters the engine sums for /stats and /metrics (stream restarts and opens). */
const ENGINE_STAT_KEYS = ["streamsOpened", "rollovers", "reconnects", "modelFallbacks"] as const;

export class GoogleEngine implements Engine {
  readonly name: string;
  readonly profile: EngineProfile;
  private readonly client: StreamingClient;
  readonly sessions = new Set<GoogleSession>();
  /** The counters of the calls that ended. */
  private readonly ended: Record<(typeof ENGINE_STAT_KEYS)[number], number> = {
    streamsOpened: 0,
    rollovers: 0,
    reconnects: 0,
    modelFallbacks: 0,
  };

  constructor(
    private readonly config: GoogleConfig,
    private readonly log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void,
  ) {
    this.name = `google-${config.api}`;
    this.profile = { name: config.profile, punctuation: punctuates(config) };
    const [host, port] = config.endpoint.split(":");
    const options = {
      apiEndpoint: host,
      ...(port ? { port: Number(port) } : {}),
      ...(config.insecure ? { sslCreds: grpc.credentials.createInsecure() } : {}),
    };
    const Client = config.api === "v1" ? speech.v1.SpeechClient : speech.v2.SpeechClient;
    this.client = new Client(options) as unknown as StreamingClient;
  }

  open(call: RelayStart, listener: EngineListener): EngineSession {
    const session = new GoogleSession({
      config: this.config,
      phrases: callPhrases(this.config, call),
      listener,
      // the raw bidi call: config and audio requests are written by the session (the helper
      // `streamingRecognize` wraps v1 only and cannot carry v2's recognizer)
      openStream: () => this.client._streamingRecognize(),
      log: (level, msg, fields) => this.log?.(level, msg, { callSid: call.callSid, ...fields }),
    });
    this.sessions.add(session);
    const end = session.end.bind(session);
    session.end = () =>
      end().finally(() => {
        if (!this.sessions.delete(session)) return;
        for (const k of ENGINE_STAT_KEYS) this.ended[k] += session.stats[k];
      });
    return session;
  }

  /** Counters for /stats and /metrics: the stream restarts of every call, ended and live. */
  stats(): Record<string, number> {
    const sum = { ...this.ended };
    for (const session of this.sessions) for (const k of ENGINE_STAT_KEYS) sum[k] += session.stats[k];
    return sum;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
