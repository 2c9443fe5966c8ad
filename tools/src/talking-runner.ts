/**
 * A runner whose engine "hears" one utterance per fixed stretch of audio (a partial halfway, a
 * final at its end), through the real transcript policy and relay: calls that produce finals at a
 * known rate without a speech service (records and webhook tests, `ozen bench records`).
 */
import type { RelayStart } from "@ozen/shared";
import { RelayServer, TranscriptForwarder } from "@ozen/stt-runner";
import type { Engine, EngineSession } from "@ozen/stt-runner";
import type { EngineListener } from "../../stt-runner/src/engines/engine.js";
import { newRelaySecret } from "./relay-secret.js";

const RATE_HZ = 8000;

/**
 * One utterance per `utteranceMs` of call audio: a partial at its middle, a final at its end. Even
 * finals carry a second engine's text for their audio, as the whisper final pass adds it.
 */
export class TalkingEngine implements Engine {
  readonly name = "talking";
  constructor(private readonly utteranceMs = 400) {}

  open(_start: RelayStart, listener: EngineListener): EngineSession {
    const per = (this.utteranceMs * RATE_HZ) / 1000;
    let samples = 0;
    let n = 0;
    let partialDone = false;
    const ms = (s: number) => Math.round((s * 1000) / RATE_HZ);
    return {
      feed: (pcm) => {
        samples += pcm.length;
        const start = n * per;
        if (!partialDone && samples - start >= per / 2) {
          partialDone = true;
          listener.interim({ segments: [{ text: `מילה ${n + 1}` }], audioEndMs: ms(start + per / 2) });
        }
        if (samples - start >= per) {
          n++;
          partialDone = false;
          listener.final({
            text: `מילה ${n} נאמרה`,
            audioStartMs: ms(start),
            audioEndMs: ms(start + per),
            ...(n % 2 === 0 ? { alternatives: [{ engine: "whisper", text: `מילה ${n} נאמרה שוב` }] } : {}),
          });
        }
      },
      end: async () => {},
    };
  }
}

export interface TalkingRunner {
  readonly port: number;
  /** The relay's secret the runner checks: the edge in front of it needs the same RELAY_SECRET. */
  readonly relaySecret: string;
  close(): Promise<void>;
}

/**
 * A RelayServer with `TalkingEngine` and the transcript policy, as the runner runs it; checking
 * relay credentials signed with `relaySecret` (default: a fresh random one).
 */
export async function startTalkingRunner(
  engine = new TalkingEngine(),
  relaySecret = newRelaySecret(),
): Promise<TalkingRunner> {
  const server = new RelayServer({
    engine,
    port: 0,
    relaySecret,
    log: () => {},
    listenerFor: (start, send, clock) => new TranscriptForwarder({ start, engine: engine.name, send, clock }),
  });
  const port = await server.listen();
  return { port, relaySecret, close: () => server.close() };
}
