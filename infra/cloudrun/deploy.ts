/**
 * Deploys the stt-runner to Cloud Run with the official client (`@google-cloud/run`'s
 * `ServicesClient`, Admin API v2): creates the service, or updates it when it exists, waits for
 * the long-running operation (the new revision ready and serving), then sets the invoker binding:
 * `roles/run.invoker` for the edge's service account alone (the service stays reachable from the
 * internet, and Cloud Run's front end refuses every request without that account's ID token).
 *
 *   node --import tsx infra/cloudrun/deploy.ts --project P --image IMAGE --edge-service-account EMAIL
 *     [--region me-west1] [--service ozen-stt-runner] [--min-instances 1] [--max-instances 10]
 *     [--calls-per-instance 50] [--service-account SA] [--env KEY=VALUE ...] [--dry-run]
 *     [--gpu]   one NVIDIA L4, the GPU image (stt-runner/Dockerfile --target gpu); region europe-west4
 *               unless --region names another GPU region
 *     [--endpoint HOST:PORT --insecure]   another Admin API endpoint (a local stand-in, in tests)
 *   `make deploy` runs it. Exit codes: 0 deployed (or dry run), 1 Cloud Run refused, 2 bad arguments.
 */
import { parseArgs } from "node:util";
import { gpuRunnerService, runnerInvokerPolicy, runnerService, serviceAccountMember } from "./service.js";
import type { IamPolicy } from "./service.js";

const { values } = parseArgs({
  options: {
    project: { type: "string" },
    region: { type: "string" },
    service: { type: "string", default: "ozen-stt-runner" },
    image: { type: "string" },
    "min-instances": { type: "string", default: "1" },
    "max-instances": { type: "string", default: "10" },
    "calls-per-instance": { type: "string" },
    "service-account": { type: "string" },
    "edge-service-account": { type: "string" },
    env: { type: "string", multiple: true, default: [] },
    "dry-run": { type: "boolean", default: false },
    gpu: { type: "boolean", default: false },
    endpoint: { type: "string" },
    insecure: { type: "boolean", default: false },
  },
});

function fail(message: string, code = 2): never {
  console.error(`deploy: ${message}`);
  process.exit(code);
}

if (!values.project) fail("--project is required");
if (!values.image) fail("--image is required (e.g. REGION-docker.pkg.dev/PROJECT/ozen/stt-runner:TAG)");
const env: Record<string, string> = {};
for (const kv of values.env) {
  const i = kv.indexOf("=");
  if (i <= 0) fail(`--env ${kv} is not KEY=VALUE`);
  env[kv.slice(0, i)] = kv.slice(i + 1);
}
const edgeAccount = values["edge-service-account"];
let invokers: string[] = [];
try {
  invokers = edgeAccount ? [serviceAccountMember(edgeAccount)] : [];
} catch (e) {
  fail(`--edge-service-account: ${(e as Error).message}`);
}
if (invokers.length === 0 && !values["dry-run"]) {
  fail("--edge-service-account is required: the edge's service account is the runner's only invoker (docs/deploy.md)");
}
const settings = {
  project: values.project,
  // me-west1 (Tel Aviv) is nearest the callers; it has no GPUs, europe-west4 does
  region: values.region ?? (values.gpu ? "europe-west4" : "me-west1"),
  serviceId: values.service,
  image: values.image,
  serviceAccount: values["service-account"],
  minInstances: Number(values["min-instances"]),
  maxInstances: Number(values["max-instances"]),
  callsPerInstance: values["calls-per-instance"] !== undefined ? Number(values["calls-per-instance"]) : undefined,
  env,
};
let request: ReturnType<typeof runnerService>;
try {
  request = values.gpu ? gpuRunnerService(settings) : runnerService(settings);
} catch (e) {
  fail((e as Error).message);
}

if (values["dry-run"]) {
  // the request as sent, and the invoker binding it gets
  console.log(JSON.stringify({ ...request, invokers }, null, 2));
  process.exit(0);
}

const { ServicesClient } = await import("@google-cloud/run");
const grpc = await import("@grpc/grpc-js");
const [host, port] = (values.endpoint ?? "").split(":");
const client = new ServicesClient({
  ...(host ? { apiEndpoint: host } : {}),
  ...(port ? { port: Number(port) } : {}),
  ...(values.insecure ? { sslCreds: grpc.credentials.createInsecure() } : {}),
});

/** A Google API error as a person reads it: the status name and the message. */
function apiError(e: unknown): string {
  const err = e as { code?: number; details?: string; message?: string };
  const name = err.code !== undefined ? grpc.status[err.code] : undefined;
  return `${name ?? "error"}${err.code !== undefined ? ` (${err.code})` : ""}: ${err.details || err.message || String(e)}`;
}

const name = `${request.parent}/services/${request.serviceId}`;
try {
  let exists = true;
  try {
    await client.getService({ name });
  } catch (e) {
    if ((e as { code?: number }).code !== grpc.status.NOT_FOUND) throw e;
    exists = false;
  }
  console.error(`deploy: ${exists ? "updating" : "creating"} ${name}; waiting for the revision to be ready ...`);
  const [operation] = exists
    ? await client.updateService({ service: { ...request.service, name } })
    : await client.createService(request);
  const [service] = await operation.promise();
  const [current] = await client.getIamPolicy({ resource: name });
  await client.setIamPolicy({ resource: name, policy: runnerInvokerPolicy(current as IamPolicy, invokers) });
  console.log(
    JSON.stringify({
      deployed: service.name,
      uri: service.uri,
      revision: service.latestReadyRevision,
      created: !exists,
      invokers,
    }),
  );
  await client.close();
} catch (e) {
  fail(`Cloud Run refused ${name}: ${apiError(e)}`, 1);
}
