/**
 * The greeting played on `start`: mu-law 8 kHz bytes bundled with the Worker as a static asset
 * (`edge/assets/greeting.ulaw`, replace it to change the greeting). Split once per isolate into
 * base64 chunks of one second, so `start` only sends prepared strings.
 */
import { encodeBase64 } from "@ozen/shared";
import greetingAsset from "../../assets/greeting.ulaw";

const CHUNK_BYTES = 8000; // 1 s of mu-law per outbound media message

let chunks: string[] | undefined;

export function greetingChunks(): readonly string[] {
  if (!chunks) {
    const bytes = new Uint8Array(greetingAsset);
    chunks = [];
    for (let i = 0; i < bytes.length; i += CHUNK_BYTES) chunks.push(encodeBase64(bytes.subarray(i, i + CHUNK_BYTES)));
  }
  return chunks;
}
