/**
 * Google's side of a private Cloud Run runner, on loopback for tests, speaking the real protocols:
 * - `FakeTokenEndpoint`: Google's OAuth token endpoint for the JWT bearer grant with
 *   `target_audience`. It checks the assertion as Google does (RS256 signature against the
 *   service account's public key, iss/sub, aud = the token URI, iat/exp, the grant type) and
 *   answers `{"id_token": ...}`, a JWT signed by its own "Google" key whose `exp` the test sets.
 * - `IamFrontEnd`: Cloud Run's front end for a service whose only invoker is that service
 *   account: a WebSocket upgrade without a valid ID token of the right audience is answered 403;
 *   a valid one is passed to the runner behind it.
 * And `serviceAccountKey()`: a service account's JSON key, as IAM gives it, for a key pair
 * generated here.
 */
import { generateKeyPairSync, createSign, createVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { connect } from "node:net";
import type { AddressInfo, Socket } from "node:net";

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");
const fromB64url = (s: string) => JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as Record<string, unknown>;

export interface ServiceAccount {
  readonly email: string;
  readonly publicKey: KeyObject;
  /** The JSON key file's text (RUNNER_SA_KEY). */
  readonly keyJson: string;
}

/** A service account with a fresh RSA key whose JSON key names `tokenUri`. */
export function serviceAccountKey(
  tokenUri: string,
  email = "ozen-edge@ozen-test.iam.gserviceaccount.com",
): ServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyJson = JSON.stringify({
    type: "service_account",
    project_id: "ozen-test",
    private_key_id: "0123456789abcdef",
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: email,
    client_id: "100000000000000000001",
    auth_uri: "https://accounts.google.com/o/oauth2/auth",
    token_uri: tokenUri,
  });
  return { email, publicKey, keyJson };
}

/** Verifies a compact RS256 JWT against `key`; returns its header and claims, or why not. */
export function verifyJwt(
  jwt: string,
  key: KeyObject,
): { ok: true; header: Record<string, unknown>; claims: Record<string, unknown> } | { ok: false; why: string } {
  const parts = jwt.split(".");
  if (parts.length !== 3) return { ok: false, why: "not a compact JWT" };
  const header = fromB64url(parts[0]!);
  if (header["alg"] !== "RS256") return { ok: false, why: `alg ${String(header["alg"])}` };
  const verify = createVerify("RSA-SHA256");
  verify.update(`${parts[0]}.${parts[1]}`);
  if (!verify.verify(key, Buffer.from(parts[2]!, "base64url"))) return { ok: false, why: "bad signature" };
  return { ok: true, header, claims: fromB64url(parts[1]!) };
}

function signJwt(claims: object, key: KeyObject): string {
  const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "fake-google" }))}.${b64url(JSON.stringify(claims))}`;
  const sign = createSign("RSA-SHA256");
  sign.update(input);
  return `${input}.${sign.sign(key).toString("base64url")}`;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => resolve(body));
  });
}

/** A token request the endpoint took, and what it found wrong (empty: accepted). */
export interface TokenRequest {
  readonly problems: string[];
  readonly claims: Record<string, unknown>;
  readonly header: Record<string, unknown>;
  readonly grantType: string | null;
  /** The ID token answered, when one was. */
  idToken?: string;
}

export class FakeTokenEndpoint {
  /** "Google"'s key: it signs the ID tokens; the front end checks them with its public half. */
  private readonly google = generateKeyPairSync("rsa", { modulusLength: 2048 });
  readonly requests: TokenRequest[] = [];
  /** Lifetime of the ID tokens it issues, s. */
  lifetimeS = 3600;
  /** Answer 503 to every request (Google's endpoint is down). */
  down = false;
  private readonly accounts = new Map<string, KeyObject>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeTokenEndpoint> {
    const self: { endpoint?: FakeTokenEndpoint } = {};
    const server = createServer((req, res) => void self.endpoint!.handle(req, res));
    self.endpoint = new FakeTokenEndpoint(server, await listen(server));
    return self.endpoint;
  }

  get tokenUri(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  get googlePublicKey(): KeyObject {
    return this.google.publicKey;
  }

  /** A new service account Google knows (its public key registered here). */
  newServiceAccount(email?: string): ServiceAccount {
    const sa = serviceAccountKey(this.tokenUri, email);
    this.accounts.set(sa.email, sa.publicKey);
    return sa;
  }

  /** Successful token requests. */
  get issued(): TokenRequest[] {
    return this.requests.filter((r) => r.idToken !== undefined);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (this.down) {
      this.requests.push({ problems: ["endpoint down"], claims: {}, header: {}, grantType: null });
      res.writeHead(503, { "Content-Type": "application/json" }).end('{"error":"unavailable"}');
      return;
    }
    const form = new URLSearchParams(body);
    const problems: string[] = [];
    if (req.method !== "POST" || req.url !== "/token") problems.push(`${req.method} ${req.url}`);
    if (!/^application\/x-www-form-urlencoded/.test(req.headers["content-type"] ?? "")) problems.push("content-type");
    const grantType = form.get("grant_type");
    if (grantType !== "urn:ietf:params:oauth:grant-type:jwt-bearer") problems.push(`grant_type ${grantType}`);
    const assertion = form.get("assertion") ?? "";
    const unverified = assertion.split(".")[1];
    const claims = unverified ? fromB64url(unverified) : {};
    const key = this.accounts.get(String(claims["iss"]));
    const v = key ? verifyJwt(assertion, key) : { ok: false as const, why: `unknown issuer ${String(claims["iss"])}` };
    const header = v.ok ? v.header : {};
    if (!v.ok) problems.push(v.why);
    const now = Date.now() / 1000;
    if (claims["sub"] !== claims["iss"]) problems.push("sub is not the service account");
    if (claims["aud"] !== this.tokenUri) problems.push(`aud ${String(claims["aud"])}`);
    const iat = Number(claims["iat"]);
    const exp = Number(claims["exp"]);
    if (!(Math.abs(iat - now) < 60)) problems.push(`iat ${iat} is not now`);
    if (!(exp > now && exp - iat <= 3600)) problems.push(`exp ${exp} (iat ${iat})`);
    if (typeof claims["target_audience"] !== "string") problems.push("no target_audience");
    const record: TokenRequest = { problems, claims, header, grantType };
    this.requests.push(record);
    if (problems.length > 0) {
      res
        .writeHead(400, { "Content-Type": "application/json" })
        .end(JSON.stringify({ error: "invalid_grant", error_description: problems.join("; ") }));
      return;
    }
    const iatNow = Math.floor(now);
    record.idToken = signJwt(
      {
        iss: "https://accounts.google.com",
        aud: claims["target_audience"],
        azp: claims["iss"],
        email: claims["iss"],
        email_verified: true,
        iat: iatNow,
        exp: iatNow + this.lifetimeS,
        // tokens issued in the same second differ
        jti: `t${this.requests.length}`,
      },
      this.google.privateKey,
    );
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ id_token: record.idToken }));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** An upgrade the front end saw: the bearer token and whether it let it through. */
export interface FrontEndUpgrade {
  readonly token: string | undefined;
  readonly admitted: boolean;
  readonly why: string;
}

/**
 * Cloud Run's front end for a private service: admits an upgrade whose bearer token is an ID
 * token signed by Google (`googleKey`) for `audience`, not expired, of the invoker `invoker`;
 * answers 403 otherwise. Admitted connections are piped to the runner on `runnerPort`.
 */
export class IamFrontEnd {
  readonly upgrades: FrontEndUpgrade[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(o: {
    runnerPort: number;
    googleKey: KeyObject;
    invoker: string;
    audience?: string;
  }): Promise<IamFrontEnd> {
    const self: { front?: IamFrontEnd } = {};
    const server = createServer((_req, res) => res.writeHead(403).end("Forbidden"));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const f = self.front!;
      const audience = o.audience ?? `http://127.0.0.1:${f.port}`;
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
      const why = f.check(token, o.googleKey, audience, o.invoker);
      f.upgrades.push({ token, admitted: why === "", why });
      if (why !== "") {
        socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const upstream = connect(o.runnerPort, "127.0.0.1");
      f.track(socket, upstream);
      // the request as it came (the runner sees the same upgrade, headers and all)
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    self.front = new IamFrontEnd(server, await listen(server));
    return self.front;
  }

  /** "" when admitted, else why not. */
  private check(token: string | undefined, googleKey: KeyObject, audience: string, invoker: string): string {
    if (!token) return "no bearer token";
    const v = verifyJwt(token, googleKey);
    if (!v.ok) return v.why;
    if (v.claims["aud"] !== audience) return `audience ${String(v.claims["aud"])}, expected ${audience}`;
    if (!(Number(v.claims["exp"]) > Date.now() / 1000)) return "expired";
    if (v.claims["email"] !== invoker) return `${String(v.claims["email"])} is not an invoker`;
    return "";
  }

  private track(...sockets: Socket[]): void {
    for (const s of sockets) {
      this.sockets.add(s);
      s.on("error", () => sockets.forEach((x) => x.destroy()));
      s.on("close", () => {
        this.sockets.delete(s);
        sockets.forEach((x) => x.destroy());
      });
    }
  }

  get admitted(): FrontEndUpgrade[] {
    return this.upgrades.filter((u) => u.admitted);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
