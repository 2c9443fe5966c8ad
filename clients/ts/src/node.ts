/**
 * `@ozen/client/node`: the client on Node with the `ws` package (Node 20 has no global
 * WebSocket), which sends the token as a header. Everything else is `@ozen/client`'s.
 */
import WebSocket from "ws";
import { OzenClient as BaseClient } from "./call.js";
import type { ClientOptions } from "./call.js";
import { OzenError } from "./errors.js";
import { holdEvents } from "./socket.js";
import type { ClientSocket, SocketFactory } from "./socket.js";

export * from "./index.js";

/** Opens the socket with `ws`, the bearer token as a header. */
export const nodeSocket: SocketFactory = (url, token) =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${token}` },
      perMessageDeflate: false,
      maxPayload: 1 << 20,
    });
    const held = holdEvents(ws as unknown as ClientSocket);
    ws.once("open", () => resolve(held));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => reject(new OzenError(`http_${res.statusCode}`, body.slice(0, 200))));
    });
    ws.once("error", (e) => reject(new OzenError("connect_failed", e.message)));
  });

/** `OzenClient` with `ws` as its socket unless told otherwise. */
export class OzenClient extends BaseClient {
  constructor(o: ClientOptions) {
    super({ socket: nodeSocket, ...o });
  }
}
