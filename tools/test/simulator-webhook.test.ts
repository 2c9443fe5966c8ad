/**
 * The simulator's voice webhook against a server that closes a kept-alive connection the moment
 * a second request comes on it: what workerd does to a client that sends on an idle socket just
 * as workerd closes it (CI saw `fetch failed: other side closed` in a test's setup). Made
 * deterministic here: the server keeps the connection open, then drops whatever request comes on
 * it again (a keep-alive timeout racing the request could not be made to fail every time).
 */
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, expect, it } from "vitest";
import { newIdentity, requestTwiml } from "../src/simulator.js";

const TWIML =
  '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://edge.test/twilio/stream/CA1"/></Connect></Response>';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A webhook that answers on a fresh connection and destroys a reused one before answering. */
async function closesReusedConnections(): Promise<{ url: string; connections: () => number; reused: () => number }> {
  let connections = 0;
  let reused = 0;
  const answered = new WeakSet<object>();
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (answered.has(req.socket)) {
        reused++;
        req.socket.destroy(); // closed with no response: "other side closed" at the client
        return;
      }
      answered.add(req.socket);
      res.writeHead(200, { "Content-Type": "text/xml", "Keep-Alive": "timeout=60" }).end(TWIML);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections, reused: () => reused };
}

it("sends each voice webhook on a connection of its own, so a socket the edge closed is never reused", async () => {
  const edge = await closesReusedConnections();
  const webhook = { edgeUrl: edge.url, authToken: "token", signature: "none" as const };

  const first = await requestTwiml({ ...webhook, identity: newIdentity() });
  // idle a while, as between two tests' calls: a pooled connection would be free for reuse now
  await new Promise((r) => setTimeout(r, 50));
  const second = await requestTwiml({ ...webhook, identity: newIdentity() });

  expect(first.streamUrl).toBe("wss://edge.test/twilio/stream/CA1");
  expect(second.streamUrl).toBe("wss://edge.test/twilio/stream/CA1");
  expect(edge.reused()).toBe(0);
  expect(edge.connections()).toBe(2);
});
