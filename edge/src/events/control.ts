/**
 * Agent control on the call's event WebSocket (`docs/agent-control.md`): which socket controls
 * the call (the newest one that asked with `?control=1` and a token that allows it), the control
 * messages (`play`, `clear`, `mark`, binary chunks) parsed into calls on the call's voice
 * (`call/playback.ts`), and the error replies. A refused message is answered on its own socket
 * and counted; the socket stays open.
 */
import { decodeBase64Into } from "@ozen/shared";
import type { CallVoice, ControlResult } from "../call/playback.js";
import type { SocketHooks } from "./subscribers.js";

/** Largest control text message: a 64 KiB chunk in base64 plus its JSON, rounded up. */
export const MAX_CONTROL_MESSAGE_CHARS = 96 * 1024;
/** Largest `audio` field: base64 of 64 KiB. */
const MAX_AUDIO_CHARS = Math.ceil((64 * 1024) / 3) * 4;

export type ControlMessage =
  | {
      readonly type: "play";
      readonly id: unknown;
      readonly encoding?: unknown;
      readonly sampleRate?: unknown;
      readonly audio?: unknown;
      readonly last?: unknown;
    }
  | { readonly type: "clear" }
  | { readonly type: "mark"; readonly name: unknown };

export interface ControlError {
  readonly code: string;
  readonly message: string;
}

/**
 * A text message from a subscriber: a control message, an error for one that is malformed, or
 * undefined when it is not a control message at all (an ack, or something the ack path counts).
 */
export function parseControlText(data: string): ControlMessage | ControlError | undefined {
  if (data.length > MAX_CONTROL_MESSAGE_CHARS) {
    return {
      code: "chunk_too_large",
      message: `message is ${data.length} characters, the limit is ${MAX_CONTROL_MESSAGE_CHARS} (64 KiB of audio)`,
    };
  }
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || !("type" in v)) return undefined;
  const o = v as Record<string, unknown>;
  switch (o["type"]) {
    case "play":
      if (o["last"] !== undefined && typeof o["last"] !== "boolean")
        return { code: "bad_message", message: "play.last must be true or false" };
      if (o["audio"] !== undefined && typeof o["audio"] !== "string")
        return { code: "bad_message", message: "play.audio must be base64 text" };
      return {
        type: "play",
        id: o["id"],
        encoding: o["encoding"],
        sampleRate: o["sampleRate"],
        audio: o["audio"],
        last: o["last"],
      };
    case "clear":
      return { type: "clear" };
    case "mark":
      return { type: "mark", name: o["name"] };
    default:
      return {
        code: "bad_message",
        message: `type ${JSON.stringify(String(o["type"]).slice(0, 20))} is not a control message; send play, clear or mark`,
      };
  }
}

export interface ControlCounters {
  controllers: number;
  takeovers: number;
  refused: Record<string, number>;
}

/** One call's control: who controls, and the messages of every subscriber socket. */
export class ControlDesk {
  readonly counters: ControlCounters = { controllers: 0, takeovers: 0, refused: {} };
  private controller: { readonly id: number; readonly reply: (o: object) => void } | undefined;
  private nextId = 1;
  private readonly scratch = new Uint8Array(64 * 1024 + 3);

  constructor(
    private readonly voice: CallVoice,
    /** Clears through the call (counted with the API's clears). */
    private readonly clear: () => boolean,
  ) {}

  /** Hooks for a new subscriber socket; `wantsControl`: it asked with `?control=1` and its token allows it. */
  socket(wantsControl: boolean): SocketHooks {
    const id = this.nextId++;
    let reply: ((o: object) => void) | undefined;
    return {
      opened: (r) => {
        reply = r;
        if (!wantsControl) return;
        if (this.controller) {
          this.counters.takeovers++;
          this.controller.reply({ type: "control", state: "lost", reason: "another socket took control" });
          // its open utterance ends as it is, so the new controller can speak
          this.voice.controllerGone();
        }
        this.controller = { id, reply: r };
        this.counters.controllers++;
        r({ type: "control", state: "granted" });
      },
      message: (data) => {
        const answer = (result: ControlResult | ControlError | undefined, extra: Record<string, unknown> = {}) => {
          if (!result || ("ok" in result && result.ok)) return;
          this.counters.refused[result.code] = (this.counters.refused[result.code] ?? 0) + 1;
          reply?.({ type: "error", code: result.code, message: result.message, ...extra });
        };
        const t0 = performance.now();
        if (typeof data !== "string") {
          if (this.controller?.id !== id) return (answer(notController(wantsControl)), true);
          answer(this.voice.append(new Uint8Array(data), t0));
          return true;
        }
        const m = parseControlText(data);
        if (m === undefined) return false;
        if ("code" in m) return (answer(m), true);
        if (this.controller?.id !== id) return (answer(notController(wantsControl)), true);
        switch (m.type) {
          case "clear":
            if (!this.clear()) answer({ code: "not_streaming", message: "the call is not streaming (or cannot play)" });
            break;
          case "mark":
            answer(this.voice.mark(m.name));
            break;
          case "play": {
            let audio = new Uint8Array(0);
            if (typeof m.audio === "string" && m.audio.length > 0) {
              if (m.audio.length > MAX_AUDIO_CHARS) {
                answer(
                  {
                    code: "chunk_too_large",
                    message: `audio is ${m.audio.length} base64 characters, over 64 KiB of audio`,
                  },
                  { id: m.id },
                );
                break;
              }
              const n = decodeBase64Into(m.audio, this.scratch);
              if (n < 0) {
                answer({ code: "bad_audio", message: "play.audio is not valid base64" }, { id: m.id });
                break;
              }
              audio = this.scratch.subarray(0, n);
            }
            const format =
              m.encoding === undefined && m.sampleRate === undefined
                ? undefined
                : { encoding: m.encoding as never, sampleRateHz: m.sampleRate as never };
            answer(this.voice.play(m.id, format, audio, m.last === true, t0), { id: m.id });
            break;
          }
        }
        return true;
      },
      gone: () => {
        if (this.controller?.id !== id) return;
        this.controller = undefined;
        this.voice.controllerGone();
      },
    };
  }
}

function notController(asked: boolean): ControlError {
  return {
    code: "not_controller",
    message: asked
      ? "another socket took control of this call"
      : "this socket is read-only: connect with ?control=1 and a token that allows control",
  };
}
