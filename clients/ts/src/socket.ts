/**
 * The WebSocket under a call's stream, wherever the client runs. Each runtime opens it its own
 * way: Cloudflare Workers by `fetch` with `Upgrade: websocket` (headers allowed), Node 20 with the
 * `ws` package (`@ozen/client/node`), a runtime with only the standard `WebSocket` (a browser,
 * Deno, Node 22) with the token as `?token=` (the standard constructor takes no headers).
 */
import { OzenError } from "./errors.js";

/** The part of a WebSocket the client uses (the standard API; `ws` and Workers' fit). */
export interface ClientSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (ev: { code: number }) => void): void;
  addEventListener(type: "error", listener: (ev: unknown) => void): void;
}

/** Opens a socket to `url` (ws:// or wss://) with the bearer `token`; rejects with OzenError. */
export type SocketFactory = (url: string, token: string) => Promise<ClientSocket>;

const OPEN = 1;

type Listener = (ev: never) => void;

/**
 * `raw` with its events held from the moment it exists until someone listens: the edge speaks
 * first (`control: granted`), and a message that arrives with the upgrade's answer would
 * otherwise fire before the caller of the factory has attached its listeners.
 */
export function holdEvents(raw: ClientSocket): ClientSocket {
  const held: { type: "message" | "close" | "error"; ev: unknown }[] = [];
  const listeners: Record<string, Listener[]> = { message: [], close: [], error: [] };
  for (const type of ["message", "close", "error"] as const) {
    (raw.addEventListener as (t: string, l: (ev: unknown) => void) => void)(type, (ev) => {
      const ls = listeners[type]!;
      if (ls.length === 0) held.push({ type, ev });
      else for (const l of ls) (l as (e: unknown) => void)(ev);
    });
  }
  return {
    /** The runtime's own socket (tests drop it to simulate a network failure). */
    raw,
    get readyState() {
      return raw.readyState;
    },
    send: (data) => raw.send(data),
    close: (code, reason) => raw.close(code, reason),
    addEventListener(type: "message" | "close" | "error", listener: Listener) {
      listeners[type]!.push(listener);
      // replay in order what this kind of listener missed
      for (let i = 0; i < held.length; i++) {
        if (held[i]!.type !== type) continue;
        const [h] = held.splice(i--, 1);
        (listener as (e: unknown) => void)(h!.ev);
      }
    },
  } as ClientSocket;
}

/** Cloudflare Workers: an outbound WebSocket by fetch, with the Authorization header. */
export const workersSocket: SocketFactory = async (url, token) => {
  const res = await fetch(url.replace(/^ws/, "http"), {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${token}` },
  });
  const ws = (res as unknown as { webSocket?: ClientSocket & { accept(): void } }).webSocket;
  if (res.status !== 101 || !ws) {
    throw new OzenError(`http_${res.status}`, (await res.text()).slice(0, 200) || `the edge answered ${res.status}`);
  }
  const held = holdEvents(ws);
  ws.accept();
  return held;
};

/** The standard WebSocket (browsers, Deno, Node 22+): the token goes as `?token=`. */
export const standardSocket: SocketFactory = (url, token) =>
  new Promise((resolve, reject) => {
    const u = new URL(url);
    u.searchParams.set("token", token);
    const ws = new WebSocket(u.toString());
    const held = holdEvents(ws as unknown as ClientSocket);
    ws.addEventListener("open", () => resolve(held));
    ws.addEventListener("close", (ev) => {
      if (ws.readyState !== OPEN) reject(new OzenError("connect_failed", `the upgrade failed (close ${ev.code})`));
    });
  });

/** The runtime's own way: Workers' fetch upgrade, else the standard WebSocket. */
export function defaultSocketFactory(): SocketFactory {
  const ua = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  if (ua === "Cloudflare-Workers") return workersSocket;
  if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function") return standardSocket;
  return () =>
    Promise.reject(
      new OzenError("no_websocket", "this runtime has no WebSocket: on Node 20 import from @ozen/client/node"),
    );
}
