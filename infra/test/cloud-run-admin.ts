/**
 * A small Cloud Run Admin API (v2) on loopback for tests: grpc-js serving the definitions inside
 * `@google-cloud/run` (its build/protos; google/iam, google/longrunning from google-gax, the
 * client's transport), as the Speech fake does with `@google-cloud/speech`'s. It keeps services
 * by name: GetService (NOT_FOUND when absent), CreateService and UpdateService answer a
 * long-running operation that is done only after `pollsBeforeDone` GetOperation polls (then the
 * service, or the error status the test set), GetIamPolicy and SetIamPolicy (with etags).
 */
import { createRequire } from "node:module";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protos as runProtos } from "@google-cloud/run";

const require = createRequire(import.meta.url);
const protos = path.join(path.dirname(require.resolve("@google-cloud/run/package.json")), "build", "protos");
const gaxMain = require.resolve("google-gax", { paths: [protos] });
const commonProtos = path.join(gaxMain.slice(0, gaxMain.lastIndexOf(`${path.sep}build${path.sep}`)), "build", "protos");

const ServiceProto = runProtos.google.cloud.run.v2.Service;

/** A service as the fake keeps it (the Admin API's JSON form: camelCase, enums as names). */
export type StoredService = Record<string, any>;

export interface AdminCall {
  readonly method: string;
  readonly request: any;
}

interface PendingOperation {
  polls: number;
  service: StoredService;
  error?: { code: grpc.status; message: string };
}

const anyOf = (service: StoredService) => ({
  type_url: "type.googleapis.com/google.cloud.run.v2.Service",
  value: Buffer.from(ServiceProto.encode(ServiceProto.fromObject(service)).finish()),
});

/** A request's service (proto-loader's snake_case object) in the Admin API's JSON form. */
const fromWire = (service: any): StoredService =>
  ServiceProto.toObject(ServiceProto.fromObject(camel(service)), { enums: String, longs: Number, defaults: false });

function camel(v: any): any {
  if (Array.isArray(v)) return v.map(camel);
  if (v === null || typeof v !== "object" || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), camel(x)]),
  );
}

export class CloudRunAdmin {
  readonly services = new Map<string, StoredService>();
  readonly policies = new Map<
    string,
    { version: number; bindings: { role: string; members: string[] }[]; etag: Buffer }
  >();
  readonly calls: AdminCall[] = [];
  /** GetOperation polls an operation answers not-done before it is done. */
  pollsBeforeDone = 2;
  /** The next operation ends with this error (Cloud Run refused the revision). */
  failNextOperation: { code: grpc.status; message: string } | undefined;
  private readonly operations = new Map<string, PendingOperation>();
  private opCount = 0;
  private revision = 0;

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<CloudRunAdmin> {
    const def = grpc.loadPackageDefinition(
      protoLoader.loadSync(["google/cloud/run/v2/service.proto", "google/longrunning/operations.proto"], {
        includeDirs: [protos, commonProtos],
        keepCase: true,
        longs: Number,
        enums: String,
        defaults: false,
      }),
    ) as any;
    const server = new grpc.Server();
    const self: { admin?: CloudRunAdmin } = {};
    const unary =
      (method: string, fn: (req: any) => any) =>
      (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
        self.admin!.calls.push({ method, request: call.request });
        try {
          cb(null, fn(call.request));
        } catch (e) {
          cb(e as grpc.ServiceError);
        }
      };
    server.addService(def.google.cloud.run.v2.Services.service, {
      GetService: unary("GetService", (r) => self.admin!.get(r.name)),
      CreateService: unary("CreateService", (r) => self.admin!.create(r)),
      UpdateService: unary("UpdateService", (r) => self.admin!.update(r)),
      GetIamPolicy: unary("GetIamPolicy", (r) => self.admin!.getPolicy(r.resource)),
      SetIamPolicy: unary("SetIamPolicy", (r) => self.admin!.setPolicy(r.resource, r.policy)),
    });
    server.addService(def.google.longrunning.Operations.service, {
      GetOperation: unary("GetOperation", (r) => self.admin!.poll(r.name)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    self.admin = new CloudRunAdmin(server, port);
    return self.admin;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  private get(name: string) {
    const s = this.services.get(name);
    if (!s) throw { code: grpc.status.NOT_FOUND, details: `Resource '${name}' was not found` };
    return camelToWire(s);
  }

  private create(r: any) {
    const name = `${r.parent}/services/${r.service_id}`;
    if (this.services.has(name)) throw { code: grpc.status.ALREADY_EXISTS, details: `${name} already exists` };
    return this.operation(name, fromWire(r.service));
  }

  private update(r: any) {
    const name: string = r.service?.name ?? "";
    if (!this.services.has(name)) throw { code: grpc.status.NOT_FOUND, details: `Resource '${name}' was not found` };
    return this.operation(name, fromWire(r.service));
  }

  /** Starts an operation deploying `spec` as `name`: a new revision, ready once the operation is done. */
  private operation(name: string, spec: StoredService) {
    const [, project, , region, , id] = name.split("/");
    const revision = `${id}-${String(++this.revision).padStart(5, "0")}-abc`;
    const service: StoredService = {
      ...spec,
      name,
      uri: `https://${id}-abc123-${region === "me-west1" ? "zf" : "ez"}.a.run.app`,
      latestReadyRevision: `${name}/revisions/${revision}`,
      generation: this.revision,
      terminalCondition: { type: "Ready", state: "CONDITION_SUCCEEDED" },
    };
    const opName = `projects/${project}/locations/${region}/operations/op-${++this.opCount}`;
    const op: PendingOperation = { polls: 0, service };
    if (this.failNextOperation) op.error = this.failNextOperation;
    this.failNextOperation = undefined;
    this.operations.set(opName, op);
    return { name: opName, done: false, metadata: anyOf(service) };
  }

  private poll(opName: string) {
    const op = this.operations.get(opName);
    if (!op) throw { code: grpc.status.NOT_FOUND, details: `operation ${opName} not found` };
    op.polls++;
    if (op.polls <= this.pollsBeforeDone) return { name: opName, done: false, metadata: anyOf(op.service) };
    if (op.error) return { name: opName, done: true, metadata: anyOf(op.service), error: op.error };
    this.services.set(op.service["name"], op.service);
    return { name: opName, done: true, metadata: anyOf(op.service), response: anyOf(op.service) };
  }

  private getPolicy(resource: string) {
    if (!this.services.has(resource)) throw { code: grpc.status.NOT_FOUND, details: `${resource} not found` };
    return this.policies.get(resource) ?? { version: 1, bindings: [], etag: Buffer.from("e0") };
  }

  private setPolicy(resource: string, policy: any) {
    if (!this.services.has(resource)) throw { code: grpc.status.NOT_FOUND, details: `${resource} not found` };
    const current = this.policies.get(resource);
    const etag: Buffer = policy.etag ?? Buffer.alloc(0);
    if (current && etag.length > 0 && !etag.equals(current.etag)) {
      throw { code: grpc.status.ABORTED, details: "the policy changed meanwhile (etag)" };
    }
    const next = {
      version: policy.version ?? 1,
      bindings: (policy.bindings ?? []).map((b: any) => ({ role: b.role, members: [...(b.members ?? [])] })),
      etag: Buffer.from(`e${(current ? Number(current.etag.toString().slice(1)) : 0) + 1}`),
    };
    this.policies.set(resource, next);
    return next;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

/** A stored service as proto-loader writes it back (snake_case keys). */
function camelToWire(v: any): any {
  if (Array.isArray(v)) return v.map(camelToWire);
  if (v === null || typeof v !== "object" || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()), camelToWire(x)]),
  );
}
