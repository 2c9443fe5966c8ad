/**
 * Deploys the stt-runner to Cloud Run with the official client (`@google-cloud/run`, Admin API
 * v2): creates the service, or updates it when it exists.
 *
 *   node --import tsx infra/cloudrun/deploy.ts --project P --region R --image IMAGE [--dry-run]
 *     [--service ozen-stt-runner] [--min-instances 1] [--max-instances 10] [--calls-per-instance 50]
 *     [--service-account SA] [--env KEY=VALUE ...]
 *     [--gpu]   one NVIDIA L4, the GPU image (stt-runner/Dockerfile --target gpu); region europe-west4
 *               unless --region names another GPU region
 */
import { parseArgs } from "node:util";
import { gpuRunnerService, runnerService } from "./service.js";

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
    env: { type: "string", multiple: true, default: [] },
    "dry-run": { type: "boolean", default: false },
    gpu: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(`deploy: ${message}`);
  process.exit(2);
}

if (!values.project) fail("--project is required");
if (!values.image) fail("--image is required (e.g. REGION-docker.pkg.dev/PROJECT/ozen/stt-runner:TAG)");
const env: Record<string, string> = {};
for (const kv of values.env) {
  const i = kv.indexOf("=");
  if (i <= 0) fail(`--env ${kv} is not KEY=VALUE`);
  env[kv.slice(0, i)] = kv.slice(i + 1);
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
const request = values.gpu ? gpuRunnerService(settings) : runnerService(settings);

if (values["dry-run"]) {
  console.log(JSON.stringify(request, null, 2));
  process.exit(0);
}

const { ServicesClient } = await import("@google-cloud/run");
const client = new ServicesClient();
const name = `${request.parent}/services/${request.serviceId}`;
let exists = true;
try {
  await client.getService({ name });
} catch (e) {
  if ((e as { code?: number }).code !== 5) throw e; // NOT_FOUND
  exists = false;
}
const operation = exists
  ? (await client.updateService({ service: { ...request.service, name } }))[0]
  : (await client.createService(request))[0];
const [service] = await operation.promise();
console.log(JSON.stringify({ deployed: service.name, uri: service.uri, created: !exists }));
