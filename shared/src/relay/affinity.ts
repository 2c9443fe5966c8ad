/**
 * Session affinity for one call's relay, sans-IO: the runner's front end (Cloud Run with
 * `sessionAffinity`, a balancer with a sticky cookie) names the instance it chose in a cookie it
 * sets on the relay upgrade's response; the edge keeps it for the call and sends it on every
 * reconnect, so a reconnect after a blip lands on the instance that holds the call's engine
 * session (resumed, no replay). The front end routes elsewhere when that instance is gone,
 * draining or refuses (and sets a new cookie), and the relay replays there.
 *
 * Only what affinity needs of RFC 6265: `name=value` per Set-Cookie line, a later line replacing an
 * earlier one of the same name, `Max-Age=0` (or a past `Expires`) removing it. Domain, Path and
 * the rest are the front end's own and not checked: the jar goes to one URL only, the runner's.
 */

/** Cookies kept at most per call, and their text's length at most (a misbehaving front end cannot grow a call). */
const MAX_COOKIES = 8;
const MAX_COOKIE_CHARS = 4096;

/** One call's affinity cookies. */
export class AffinityJar {
  private readonly cookies = new Map<string, string>();

  /** How many cookies are kept. */
  get size(): number {
    return this.cookies.size;
  }

  /** The value kept for `name`, if any. */
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /**
   * Takes the Set-Cookie lines of an upgrade's response at `nowMs`. Returns true when one of them
   * changed what is kept (the front end chose an instance other than the one the cookies named).
   */
  take(setCookieLines: readonly string[], nowMs: number): boolean {
    let changed = false;
    for (const line of setCookieLines) {
      const parsed = parseSetCookie(line, nowMs);
      if (!parsed) continue;
      if (parsed.expired) {
        changed = this.cookies.delete(parsed.name) || changed;
        continue;
      }
      if (this.cookies.get(parsed.name) === parsed.value) continue;
      if (!this.cookies.has(parsed.name) && this.cookies.size >= MAX_COOKIES) continue;
      this.cookies.set(parsed.name, parsed.value);
      changed = true;
    }
    return changed;
  }

  /** The `Cookie` header for the next dial, or undefined when nothing is kept. */
  header(): string | undefined {
    if (this.cookies.size === 0) return undefined;
    const text = Array.from(this.cookies, ([n, v]) => `${n}=${v}`).join("; ");
    return text.length <= MAX_COOKIE_CHARS ? text : undefined;
  }
}

/** A cookie name: an RFC 7230 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A cookie value: RFC 6265 cookie-octets, optionally quoted. */
const VALUE = /^"?[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"?$/;

/** One Set-Cookie line's name, value and whether it removes the cookie; undefined when it is not one. */
export function parseSetCookie(
  line: string,
  nowMs: number,
): { name: string; value: string; expired: boolean } | undefined {
  if (line.length > MAX_COOKIE_CHARS) return undefined;
  const [pair, ...attrs] = line.split(";");
  const eq = pair!.indexOf("=");
  if (eq <= 0) return undefined;
  const name = pair!.slice(0, eq).trim();
  const value = pair!.slice(eq + 1).trim();
  if (!TOKEN.test(name) || !VALUE.test(value)) return undefined;
  let expired = false;
  for (const attr of attrs) {
    const [k, v = ""] = attr.split("=", 2).map((x) => x.trim());
    const key = k!.toLowerCase();
    if (key === "max-age" && /^-?\d+$/.test(v) && Number(v) <= 0) expired = true;
    if (key === "expires") {
      const t = Date.parse(v);
      if (Number.isFinite(t) && t <= nowMs) expired = true;
    }
  }
  return { name, value, expired };
}
