import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CALL_TIMEOUT_S, runnerService } from "../cloudrun/service.js";

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
