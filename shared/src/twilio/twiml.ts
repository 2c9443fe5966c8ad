/** TwiML that points a call's audio at ozen. */

export type StreamMode = "connect" | "start";

export interface StreamTwimlOptions {
  /** `wss://host/twilio/stream/{CallSid}`: a path, never a query string (Twilio rejects those). */
  readonly streamUrl: string;
  /** `<Parameter>`s delivered in `start.customParameters`. */
  readonly parameters: Readonly<Record<string, string>>;
  /**
   * `connect`: bidirectional `<Connect><Stream>` (greeting, marks, barge-in; Twilio waits on the
   * socket). `start`: receive-only `<Start><Stream>` fork, followed by `<Pause>` so the call lives.
   */
  readonly mode: StreamMode;
  /** With `start` mode: how long the `<Pause>` after the fork lasts, seconds. */
  readonly pauseSeconds?: number;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

export function streamTwiml(o: StreamTwimlOptions): string {
  if (o.streamUrl.includes("?")) throw new Error(`stream URL ${o.streamUrl} has a query string; Twilio rejects it`);
  const params = Object.entries(o.parameters)
    .map(([name, value]) => {
      if (name.length + value.length >= 500) throw new Error(`<Parameter> ${name} is 500 characters or more`);
      return `<Parameter name="${escapeXml(name)}" value="${escapeXml(value)}"/>`;
    })
    .join("");
  const stream = `<Stream url="${escapeXml(o.streamUrl)}">${params}</Stream>`;
  const body =
    o.mode === "connect"
      ? `<Connect>${stream}</Connect>`
      : `<Start>${stream}</Start><Pause length="${o.pauseSeconds ?? 3600}"/>`;
  return `<?xml version="1.0" encoding="UTF-8"?><Response>${body}</Response>`;
}

export interface ParsedStreamTwiml {
  readonly mode: StreamMode;
  readonly streamUrl: string;
  readonly parameters: Record<string, string>;
}

function unescapeXml(s: string): string {
  return s.replace(
    /&(lt|gt|amp|quot|apos);/g,
    (_m, e: string) => ({ lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" })[e]!,
  );
}

/** Reads back the stream URL and parameters (what Twilio does; the simulator uses it). */
export function parseStreamTwiml(xml: string): ParsedStreamTwiml | undefined {
  const stream = /<Stream\b[^>]*\burl="([^"]*)"[^>]*>([\s\S]*?)<\/Stream>|<Stream\b[^>]*\burl="([^"]*)"[^>]*\/>/.exec(
    xml,
  );
  if (!stream) return undefined;
  const parameters: Record<string, string> = {};
  for (const p of (stream[2] ?? "").matchAll(/<Parameter\s+name="([^"]*)"\s+value="([^"]*)"\s*\/>/g)) {
    parameters[unescapeXml(p[1]!)] = unescapeXml(p[2]!);
  }
  return {
    mode: xml.includes("<Connect>") ? "connect" : "start",
    streamUrl: unescapeXml(stream[1] ?? stream[3]!),
    parameters,
  };
}
