/**
 * The stt-runner's Cloud Run service (Admin API v2 `Service`), built from a few settings. Pure:
 * the deploy script sends what this returns, and the test checks it.
 *
 * Why each choice:
 * - minInstanceCount >= 1 and cpuIdle false: always warm, CPU always allocated (a runner holds
 *   live gRPC streams between requests; a cold start costs seconds of a caller's speech).
 * - timeout 3600 s: a WebSocket relay is one request that lasts the whole call.
 * - sessionAffinity: an edge that reconnects after a blip lands on the instance that holds its
 *   call's engine session (the relay still replays when it does not).
 * - concurrency: calls per instance; each call is one WebSocket request.
 * - ingress all, invoker IAM on: the edge runs on Cloudflare, not in a VPC, so the service is
 *   reachable from the internet, and Cloud Run's front end lets through only requests with a
 *   Google ID token of an invoker (`runnerInvokerPolicy`: the edge's service account, never
 *   `allUsers`); the edge sends one on every relay upgrade (RUNNER_AUTH=google-id-token).
 */

export interface RunnerServiceSettings {
  readonly project: string;
  readonly region: string;
  readonly serviceId: string;
  readonly image: string;
  readonly serviceAccount?: string;
  readonly minInstances?: number;
  readonly maxInstances?: number;
  readonly callsPerInstance?: number;
  readonly cpu?: string;
  readonly memory?: string;
  /** Environment of the runner (OZEN_ENGINE, GOOGLE_*); secrets belong in Secret Manager. */
  readonly env?: Readonly<Record<string, string>>;
}

export const CALL_TIMEOUT_S = 3600;

export function runnerService(s: RunnerServiceSettings) {
  const minInstances = s.minInstances ?? 1;
  if (!Number.isInteger(minInstances) || minInstances < 1) {
    throw new RangeError(`minInstances is ${minInstances}: the runner must stay warm (>= 1)`);
  }
  const maxInstances = s.maxInstances ?? 10;
  if (maxInstances < minInstances)
    throw new RangeError(`maxInstances ${maxInstances} is below minInstances ${minInstances}`);
  const env = { OZEN_ENGINE: "google", ...s.env };
  return {
    parent: `projects/${s.project}/locations/${s.region}`,
    serviceId: s.serviceId,
    service: {
      labels: { app: "ozen", component: "stt-runner" },
      ingress: "INGRESS_TRAFFIC_ALL" as const,
      invokerIamDisabled: false,
      template: {
        scaling: { minInstanceCount: minInstances, maxInstanceCount: maxInstances },
        maxInstanceRequestConcurrency: s.callsPerInstance ?? 50,
        timeout: { seconds: CALL_TIMEOUT_S },
        sessionAffinity: true,
        executionEnvironment: "EXECUTION_ENVIRONMENT_GEN2" as const,
        ...(s.serviceAccount ? { serviceAccount: s.serviceAccount } : {}),
        containers: [
          {
            name: "stt-runner",
            image: s.image,
            ports: [{ name: "http1", containerPort: 8081 }],
            env: Object.entries(env).map(([name, value]) => ({ name, value })),
            resources: {
              limits: { cpu: s.cpu ?? "2", memory: s.memory ?? "2Gi" },
              cpuIdle: false,
              startupCpuBoost: true,
            },
            startupProbe: { httpGet: { path: "/readyz", port: 8081 }, periodSeconds: 2, failureThreshold: 30 },
            livenessProbe: { httpGet: { path: "/healthz", port: 8081 }, periodSeconds: 10 },
          },
        ],
      },
    },
  };
}

/**
 * Cloud Run's GPU for services, as documented (cloud.google.com/run/docs/configuring/services/gpu,
 * read 2026-12-01): one NVIDIA L4 (24 GB) per instance with the driver pre-installed (535, CUDA
 * 12.2; the image brings cuBLAS/cuDNN for CUDA 12), at least 4 CPU and 16 GiB of memory, CPU always
 * allocated (instance-based billing), in a few regions only (us-central1, us-east4, europe-west1,
 * europe-west4, asia-southeast1; not me-west1).
 */
export const GPU_ACCELERATOR = "nvidia-l4";
export const GPU_MIN_CPU = 4;
export const GPU_MIN_MEMORY_GIB = 16;

/**
 * Calls one GPU instance carries. To be measured: `make bench-gpu` on an L4 gives the ivrit-ai
 * model's `max_realtime_calls`; until a measured figure replaces this guess, the service carries the
 * label `calls-per-instance: to-be-measured`.
 */
export const GPU_CALLS_PER_INSTANCE = { calls: 4, measured: false } as const;

export interface GpuRunnerServiceSettings extends RunnerServiceSettings {
  /** GPU zonal redundancy (Cloud Run's default, on): capacity kept across zones, at a higher price. */
  readonly zonalRedundancy?: boolean;
}

function memoryGib(memory: string): number {
  const m = /^(\d+(?:\.\d+)?)(Gi|Mi)$/.exec(memory);
  if (!m) throw new RangeError(`memory is ${JSON.stringify(memory)}, expected a size like 16Gi or 32768Mi`);
  return Number(m[1]) / (m[2] === "Mi" ? 1024 : 1);
}

/**
 * The runner on a GPU: the same service with one L4 attached to its container, the whisper worker
 * as the engine (the GPU image's ivrit-ai model, float16), at least 4 CPU and 16 GiB. Pure.
 */
export function gpuRunnerService(s: GpuRunnerServiceSettings) {
  const cpu = s.cpu ?? String(GPU_MIN_CPU);
  if (!(Number(cpu) >= GPU_MIN_CPU))
    throw new RangeError(`cpu is ${cpu}: a GPU instance needs at least ${GPU_MIN_CPU}`);
  const memory = s.memory ?? `${GPU_MIN_MEMORY_GIB}Gi`;
  if (memoryGib(memory) < GPU_MIN_MEMORY_GIB) {
    throw new RangeError(`memory is ${memory}: a GPU instance needs at least ${GPU_MIN_MEMORY_GIB}Gi`);
  }
  const base = runnerService({
    ...s,
    cpu,
    memory,
    callsPerInstance: s.callsPerInstance ?? GPU_CALLS_PER_INSTANCE.calls,
    env: { OZEN_ENGINE: "whisper", ...s.env },
  });
  const { service } = base;
  const { template } = service;
  const callsLabel =
    s.callsPerInstance !== undefined
      ? "deploy-setting"
      : GPU_CALLS_PER_INSTANCE.measured
        ? "measured"
        : "to-be-measured";
  return {
    ...base,
    service: {
      ...service,
      labels: {
        ...service.labels,
        accelerator: GPU_ACCELERATOR,
        "calls-per-instance": callsLabel,
      },
      template: {
        ...template,
        nodeSelector: { accelerator: GPU_ACCELERATOR },
        gpuZonalRedundancyDisabled: !(s.zonalRedundancy ?? true),
        containers: template.containers.map((c) => ({
          ...c,
          resources: { ...c.resources, limits: { ...c.resources.limits, "nvidia.com/gpu": "1" } },
        })),
      },
    },
  };
}

/** The role that lets a principal call a Cloud Run service. */
export const INVOKER_ROLE = "roles/run.invoker";

/** Principals that would make the service public: never invokers of the runner. */
const PUBLIC_MEMBERS = new Set(["allUsers", "allAuthenticatedUsers"]);

export interface IamBinding {
  readonly role: string;
  readonly members: readonly string[];
  readonly condition?: unknown;
}

export interface IamPolicy {
  readonly version?: number | null;
  readonly bindings?: readonly IamBinding[] | null;
  /** Opaque: the policy's version for optimistic concurrency, as the API gave it. */
  readonly etag?: Uint8Array | string | null;
}

/** `serviceAccount:EMAIL` for a service account's email; refuses anything else. */
export function serviceAccountMember(email: string): string {
  if (!/^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$/.test(email)) {
    throw new RangeError(
      `${JSON.stringify(email)} is not a service account email (NAME@PROJECT.iam.gserviceaccount.com)`,
    );
  }
  return `serviceAccount:${email}`;
}

/**
 * The runner's IAM policy from its current one: `roles/run.invoker` held by `invokers` alone (the
 * edge's service account; `allUsers` and `allAuthenticatedUsers` never), every other binding kept,
 * and the etag kept so a concurrent change is refused rather than overwritten. Pure.
 */
export function runnerInvokerPolicy(
  current: IamPolicy | undefined,
  invokers: readonly string[],
): { version?: number; etag?: Uint8Array | string; bindings: { role: string; members: string[] }[] } {
  const bad = invokers.filter((m) => PUBLIC_MEMBERS.has(m));
  if (bad.length > 0) throw new RangeError(`${bad.join(", ")} must never invoke the runner`);
  if (invokers.length === 0) throw new RangeError("the runner needs an invoker (the edge's service account)");
  const others = (current?.bindings ?? [])
    .filter((b) => b.role !== INVOKER_ROLE)
    .map((b) => ({ ...b, members: [...b.members] }));
  return {
    ...(current?.version != null ? { version: current.version } : {}),
    ...(current?.etag != null ? { etag: current.etag } : {}),
    bindings: [...others, { role: INVOKER_ROLE, members: [...invokers] }],
  };
}
