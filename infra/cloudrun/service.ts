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
