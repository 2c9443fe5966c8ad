/** The client's error: the edge's refusal, with its code (`docs/agent-control.md`, Errors). */
export class OzenError extends Error {
  /**
   * The edge's code (`unsupported_format`, `queue_full`, `not_controller`, ...), `http_<status>`
   * when the WebSocket upgrade was refused (401: wrong token, 403: the token may not control),
   * `connection_lost` when the socket went away mid-play, `call_ended` for what still waited when
   * the call's stream ended.
   */
  readonly code: string;
  /** The utterance it is about, when the edge named one. */
  readonly playId: string | undefined;

  constructor(code: string, message: string, playId?: string) {
    super(`${code}: ${message}`);
    this.name = "OzenError";
    this.code = code;
    this.playId = playId;
  }
}

/** A webhook request whose signature, timestamp or body does not verify; answer it 401. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}
