/**
 * A Worker that uses @ozen/client as an agent would on Cloudflare Workers (bundled by the test
 * with esbuild, run on workerd by Miniflare): it opens a call's stream by fetch upgrade, speaks
 * once the call streams, and answers what it saw; and it checks a webhook signature with WebCrypto.
 */
import { OzenClient, signWebhook, verifyWebhook } from "../src/index.js";

interface Job {
  readonly baseUrl: string;
  readonly token: string;
  readonly callSid: string;
}

export default {
  async fetch(request: Request): Promise<Response> {
    const job = (await request.json()) as Job;
    const body = JSON.stringify({ id: `${job.callSid}:1`, seq: 1, accountSid: "AC", event: { type: "x" } });
    const nowS = Math.floor(Date.now() / 1000);
    const headers = new Headers({
      "X-Ozen-Timestamp": String(nowS),
      "X-Ozen-Signature": await signWebhook("s", nowS, body),
    });
    const delivery = await verifyWebhook(headers, body, "s");
    const call = new OzenClient({ baseUrl: job.baseUrl, token: job.token }).call(job.callSid);
    await call.open();
    const seen: string[] = [];
    for await (const m of call) {
      seen.push(m.type);
      if (m.type === "call.started") {
        // 300 ms of a 500 Hz square-ish tone in mu-law (no 0xff: not silence)
        const audio = Uint8Array.from({ length: 2400 }, (_, i) => (Math.floor(i / 8) % 2 ? 0x20 : 0xa0));
        await call.play(audio, { id: "from-worker", format: { encoding: "mulaw", sampleRateHz: 8000 } });
      }
      if (m.type === "playback.finished") break;
    }
    return Response.json({ seen, webhookSeq: delivery.seq, connections: call.connections });
  },
};
