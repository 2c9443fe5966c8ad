/**
 * `@ozen/client`: a call's transcript events and the agent's voice over one WebSocket, and
 * webhook verification. Runs where a WebSocket can be opened: Cloudflare Workers (fetch upgrade),
 * runtimes with the standard WebSocket; on Node 20 import `@ozen/client/node` (the `ws` package).
 *
 * ```ts
 * const client = new OzenClient({ baseUrl: "https://edge.example.com", token });
 * const call = client.call(callSid);
 * await call.open();
 * for await (const event of call) {
 *   if (event.type === "final") await call.play(answerWav);
 * }
 * ```
 */
export { CallStream, Mark, OzenClient, Playback } from "./call.js";
export type { AudioSource, ClientOptions, PlayOptions, StreamOptions } from "./call.js";
export { MAX_CHUNK_BYTES, readWav } from "./audio.js";
export type { AudioFormat } from "./audio.js";
export { OzenError, WebhookVerificationError } from "./errors.js";
export { parseEvent } from "./events.js";
export type * from "./events.js";
export { signWebhook, verifyWebhook, DEFAULT_TOLERANCE_S } from "./webhooks.js";
export type { WebhookDelivery } from "./webhooks.js";
export { defaultSocketFactory, standardSocket, workersSocket } from "./socket.js";
export type { ClientSocket, SocketFactory } from "./socket.js";
