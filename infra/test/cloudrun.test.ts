import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { protos } from "@google-cloud/run";
import { describe, expect, it } from "vitest";
import {
  CALL_TIMEOUT_S,
  GPU_ACCELERATOR,
  GPU_CALLS_PER_INSTANCE,
  gpuRunnerService,
  runnerService,
} from "../cloudrun/service.js";

const base = { project: "p", region: "me-west1", serviceId: "ozen-stt-runner", image: "img:1" };

describe("Cloud Run service for the runner", () => {
  it("stays warm with CPU always allocated", () => {
    const t = runnerService(base).service.template;
    expect(t.scaling.minInstanceCount).toBeGreaterThanOrEqual(1);
    expect(t.containers[0]!.resources.cpuIdle).toBe(false);
  });

  it("lets a WebSocket request last a whole call and keeps a call on its instance", () => {
    const t = runnerService(base).service.template;
    expect(t.timeout.seconds).toBe(CALL_TIMEOUT_S);
    expect(CALL_TIMEOUT_S).toBeGreaterThanOrEqual(3600);
    expect(t.sessionAffinity).toBe(true);
    expect(t.maxInstanceRequestConcurrency).toBe(50);
  });

  it("probes readiness and health on the runner's endpoints", () => {
    const c = runnerService(base).service.template.containers[0]!;
    expect(c.startupProbe.httpGet.path).toBe("/readyz");
    expect(c.livenessProbe.httpGet.path).toBe("/healthz");
    expect(c.ports[0]!.containerPort).toBe(8081);
  });

  it("refuses a cold-starting service", () => {
    expect(() => runnerService({ ...base, minInstances: 0 })).toThrow(/warm/);
  });

  it("sends this request from the deploy script (dry run)", () => {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "../cloudrun/deploy.ts");
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", script, "--project", "p", "--image", "img:1", "--env", "GOOGLE_API=v2", "--dry-run"],
      { encoding: "utf8" },
    );
    const req = JSON.parse(out);
    expect(req.parent).toBe("projects/p/locations/me-west1");
    expect(req.service.template.containers[0].env).toEqual([
      { name: "OZEN_ENGINE", value: "google" },
      { name: "GOOGLE_API", value: "v2" },
    ]);
  });
});

/** The service as the Admin API v2 proto reads it: a field it does not know is dropped. */
function throughTheProto(service: object): object {
  const Service = protos.google.cloud.run.v2.Service;
  return Service.toObject(Service.fromObject(service), { enums: String, longs: Number, defaults: false });
}

describe("Cloud Run service for the runner on a GPU", () => {
  const gpu = gpuRunnerService({ ...base, region: "europe-west4" });
  const t = gpu.service.template;
  const c = t.containers[0]!;

  it("attaches one NVIDIA L4 to the runner's container", () => {
    expect(t.nodeSelector).toEqual({ accelerator: "nvidia-l4" });
    expect(GPU_ACCELERATOR).toBe("nvidia-l4");
    expect(c.resources.limits["nvidia.com/gpu"]).toBe("1");
  });

  it("keeps CPU always allocated and an instance warm", () => {
    expect(c.resources.cpuIdle).toBe(false);
    expect(t.scaling.minInstanceCount).toBeGreaterThanOrEqual(1);
    expect(() => gpuRunnerService({ ...base, minInstances: 0 })).toThrow(/warm/);
  });

  it("has at least the 4 CPU and 16 GiB a GPU instance needs", () => {
    expect(c.resources.limits).toMatchObject({ cpu: "4", memory: "16Gi" });
    expect(() => gpuRunnerService({ ...base, cpu: "2" })).toThrow(/at least 4/);
    expect(() => gpuRunnerService({ ...base, memory: "8Gi" })).toThrow(/at least 16Gi/);
    expect(
      gpuRunnerService({ ...base, memory: "32768Mi" }).service.template.containers[0]!.resources.limits.memory,
    ).toBe("32768Mi");
  });

  it("runs the whisper worker as the engine", () => {
    expect(c.env).toContainEqual({ name: "OZEN_ENGINE", value: "whisper" });
  });

  it("takes its concurrency from the measured figure, and says while it is not measured yet", () => {
    expect(t.maxInstanceRequestConcurrency).toBe(GPU_CALLS_PER_INSTANCE.calls);
    expect(gpu.service.labels["calls-per-instance"]).toBe(
      GPU_CALLS_PER_INSTANCE.measured ? "measured" : "to-be-measured",
    );
    const set = gpuRunnerService({ ...base, callsPerInstance: 6 }).service;
    expect(set.template.maxInstanceRequestConcurrency).toBe(6);
    expect(set.labels["calls-per-instance"]).toBe("deploy-setting");
  });

  it("keeps GPU zonal redundancy unless asked to drop it", () => {
    expect(t.gpuZonalRedundancyDisabled).toBe(false);
    expect(gpuRunnerService({ ...base, zonalRedundancy: false }).service.template.gpuZonalRedundancyDisabled).toBe(
      true,
    );
  });

  it("is the CPU service plus the GPU, nothing else changed", () => {
    const cpu = runnerService({ ...base, region: "europe-west4", cpu: "4", memory: "16Gi", callsPerInstance: 4 });
    const { nodeSelector, gpuZonalRedundancyDisabled, containers, ...rest } = t;
    expect([nodeSelector, gpuZonalRedundancyDisabled]).toEqual([{ accelerator: "nvidia-l4" }, false]);
    const { containers: cpuContainers, ...cpuRest } = cpu.service.template;
    expect(rest).toEqual(cpuRest);
    // the container: the same but for the GPU limit and the engine
    const { resources, env, ...container } = containers[0]!;
    const { resources: cpuResources, env: cpuEnv, ...cpuContainer } = cpuContainers[0]!;
    expect(container).toEqual(cpuContainer);
    expect(resources).toEqual({ ...cpuResources, limits: { ...cpuResources.limits, "nvidia.com/gpu": "1" } });
    expect(env).toEqual([{ name: "OZEN_ENGINE", value: "whisper" }]);
    expect(cpuEnv).toEqual([{ name: "OZEN_ENGINE", value: "google" }]);
  });

  it("uses only field names the Admin API v2 knows (both services through @google-cloud/run's protos)", () => {
    expect(throughTheProto(runnerService(base).service)).toEqual(runnerService(base).service);
    expect(throughTheProto(gpu.service)).toEqual(gpu.service);
  });

  it("deploys to a GPU region with --gpu (dry run)", () => {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "../cloudrun/deploy.ts");
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", script, "--project", "p", "--image", "img:gpu", "--gpu", "--dry-run"],
      { encoding: "utf8" },
    );
    const req = JSON.parse(out);
    expect(req.parent).toBe("projects/p/locations/europe-west4");
    expect(req.service.template.nodeSelector).toEqual({ accelerator: "nvidia-l4" });
  });
});
