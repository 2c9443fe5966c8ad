/**
 * Test pieces for what a call leaves behind: the records API with the test token, plus the
 * talking runner and the webhook receiver (tools/src, shared with `ozen bench records`).
 */
import { API_TOKEN, bearer } from "./helpers.js";
import type { TestEdge } from "./helpers.js";

export { TalkingEngine, startTalkingRunner } from "../../tools/src/talking-runner.js";
export type { TalkingRunner } from "../../tools/src/talking-runner.js";
export { WebhookReceiver, signatureValid } from "../../tools/src/webhook-receiver.js";
export type { Received } from "../../tools/src/webhook-receiver.js";

export async function api(edge: TestEdge, path: string, token: string | null = API_TOKEN): Promise<Response> {
  return fetch(edge.url + path, { headers: token === null ? {} : { Authorization: `Bearer ${token}` } });
}

export async function apiJson<T = any>(edge: TestEdge, path: string): Promise<T> {
  const res = await fetch(edge.url + path, { headers: bearer });
  if (!res.ok) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}
