/**
 * How the Worker asks a call's Durable Object for something: an explicit operation in an
 * internal URL (`https://call-object/{op}`) and the CallSid in a header, both set by the Worker
 * after it checked the route, the token or signature and the CallSid. The object dispatches on
 * the operation alone, never on the public path, so a CallSid or a crafted path cannot reach
 * another handler. A Durable Object is reachable only through its namespace binding: nothing
 * outside the Worker can make these requests.
 */

/** What the Worker asks of a call's object. */
export type CallObjectOp = "stream" | "stats" | "record" | "events" | "clear" | "play";

const OPS: ReadonlySet<string> = new Set<CallObjectOp>(["stream", "stats", "record", "events", "clear", "play"]);
const ORIGIN = "https://call-object";
const CALL_SID_HEADER = "X-Ozen-Call-Sid";

/**
 * The request for `op` on the call `callSid` (already validated). `from` gives the method,
 * headers and body (a WebSocket upgrade keeps its headers); `search` the query string kept.
 */
export function callObjectRequest(op: CallObjectOp, callSid: string, from?: Request, search = ""): Request {
  const url = `${ORIGIN}/${op}${search}`;
  const req = from ? new Request(url, from) : new Request(url);
  req.headers.set(CALL_SID_HEADER, callSid);
  return req;
}

/** The operation and CallSid a request from the Worker names; undefined for any other request. */
export function callObjectRoute(request: Request): { op: CallObjectOp; callSid: string; url: URL } | undefined {
  const url = new URL(request.url);
  const op = url.pathname.slice(1);
  const callSid = request.headers.get(CALL_SID_HEADER);
  if (url.origin !== ORIGIN || !OPS.has(op) || !callSid) return undefined;
  return { op: op as CallObjectOp, callSid, url };
}
