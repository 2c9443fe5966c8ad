/**
 * `infra/cloudrun/deploy.ts` as `make deploy` runs it, against a local Cloud Run Admin API that
 * speaks `@google-cloud/run`'s own protos over gRPC (`cloud-run-admin.ts`): create when absent,
 * update when present, wait for the long-running operation, the invoker binding, a refused
 * revision, the dry run; and `wrangler deploy --dry-run` for the edge, offline.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { INVOKER_ROLE, runnerInvokerPolicy, serviceAccountMember } from "../cloudrun/service.js";
import { CloudRunAdmin } from "./cloud-run-admin.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const script = path.join(repo, "infra/cloudrun/deploy.ts");
const EDGE_SA = "ozen-edge@my-project.iam.gserviceaccount.com";
const NAME = "projects/my-project/locations/me-west1/services/ozen-stt-runner";

let admin: CloudRunAdmin;

beforeAll(async () => {
  admin = await CloudRunAdmin.start();
});
afterAll(async () => {
  await admin?.close();
});

function run(
  file: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: repo, env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The deploy script against the local Admin API. */
function deploy(...extra: string[]) {
  return run(
    process.execPath,
    [
      "--import",
      "tsx",
      script,
      "--project",
      "my-project",
      "--image",
      "me-west1-docker.pkg.dev/my-project/ozen/stt-runner:1",
      "--edge-service-account",
      EDGE_SA,
      "--endpoint",
      admin.endpoint,
      "--insecure",
      ...extra,
    ],
    { METADATA_SERVER_DETECTION: "none" },
  );
}

describe("make deploy (the runner on Cloud Run)", () => {
  it("creates the service when it is absent, waits for the revision, and makes the edge its only invoker", async () => {
    admin.calls.length = 0;
    admin.pollsBeforeDone = 2;
    const r = await deploy();
    expect(r.stderr).toContain(`creating ${NAME}`);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      deployed: NAME,
      uri: expect.stringMatching(/^https:\/\/ozen-stt-runner-.*\.a\.run\.app$/),
      revision: `${NAME}/revisions/ozen-stt-runner-00001-abc`,
      created: true,
      invokers: [`serviceAccount:${EDGE_SA}`],
    });
    // it waited: the operation was polled until done, and only then was the policy set
    const methods = admin.methods();
    expect(methods.slice(0, 2)).toEqual(["GetService", "CreateService"]);
    expect(methods.filter((m) => m === "GetOperation")).toHaveLength(3);
    expect(methods.slice(-2)).toEqual(["GetIamPolicy", "SetIamPolicy"]);
    const created = admin.services.get(NAME)!;
    expect(created["ingress"]).toBe("INGRESS_TRAFFIC_ALL");
    expect(created["template"]["scaling"]["minInstanceCount"]).toBe(1);
    expect(created["template"]["containers"][0]["image"]).toBe("me-west1-docker.pkg.dev/my-project/ozen/stt-runner:1");
    expect(admin.policies.get(NAME)!.bindings).toEqual([
      { role: INVOKER_ROLE, members: [`serviceAccount:${EDGE_SA}`] },
    ]);
  }, 120_000);

  it("updates the service when it exists, and takes allUsers off the invoker role", async () => {
    // someone made it public by hand meanwhile
    const p = admin.policies.get(NAME)!;
    p.bindings = [
      { role: INVOKER_ROLE, members: ["allUsers", `serviceAccount:${EDGE_SA}`] },
      { role: "roles/run.developer", members: ["user:ops@example.com"] },
    ];
    admin.calls.length = 0;
    const r = await deploy("--env", "GOOGLE_LANGUAGE=he-IL");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      created: false,
      revision: `${NAME}/revisions/ozen-stt-runner-00002-abc`,
    });
    expect(admin.methods().slice(0, 2)).toEqual(["GetService", "UpdateService"]);
    const update = admin.calls.find((c) => c.method === "UpdateService")!.request;
    expect(update.service.name).toBe(NAME);
    expect(admin.services.get(NAME)!["template"]["containers"][0]["env"]).toContainEqual({
      name: "GOOGLE_LANGUAGE",
      value: "he-IL",
    });
    expect(admin.policies.get(NAME)!.bindings).toEqual([
      { role: "roles/run.developer", members: ["user:ops@example.com"] },
      { role: INVOKER_ROLE, members: [`serviceAccount:${EDGE_SA}`] },
    ]);
  }, 120_000);

  it("says clearly when Cloud Run refuses the revision, and exits 1", async () => {
    admin.failNextOperation = {
      code: grpc.status.FAILED_PRECONDITION,
      message: "Revision 'ozen-stt-runner-00003-abc' is not ready: the container failed to start on port 8081",
    };
    const r = await deploy();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /deploy: Cloud Run refused .*ozen-stt-runner: FAILED_PRECONDITION \(9\): Revision 'ozen-stt-runner-00003-abc' is not ready: the container failed to start/,
    );
    expect(r.stdout).toBe("");
  }, 120_000);

  it("refuses to deploy without the edge's service account, or with a name that is not one", async () => {
    const none = await run(process.execPath, ["--import", "tsx", script, "--project", "p", "--image", "i"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--edge-service-account is required/);
    const bad = await run(process.execPath, [
      ...["--import", "tsx", script, "--project", "p", "--image", "i", "--edge-service-account", "allUsers"],
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a service account email/);
  }, 120_000);

  it("prints the spec and the invoker binding on a dry run, and calls nothing", async () => {
    admin.calls.length = 0;
    const r = await deploy("--dry-run");
    expect(r.code).toBe(0);
    const spec = JSON.parse(r.stdout);
    expect(spec).toMatchObject({
      parent: "projects/my-project/locations/me-west1",
      serviceId: "ozen-stt-runner",
      service: { ingress: "INGRESS_TRAFFIC_ALL", invokerIamDisabled: false },
      invokers: [`serviceAccount:${EDGE_SA}`],
    });
    expect(admin.calls).toHaveLength(0);
  }, 120_000);
});

describe("the runner's invoker policy", () => {
  it("is the edge's service account alone on roles/run.invoker, other roles and the etag kept", () => {
    const etag = Buffer.from("e7");
    expect(
      runnerInvokerPolicy(
        {
          version: 1,
          etag,
          bindings: [
            { role: INVOKER_ROLE, members: ["allUsers", "allAuthenticatedUsers", "user:x@example.com"] },
            { role: "roles/run.viewer", members: ["allUsers"] },
          ],
        },
        [serviceAccountMember(EDGE_SA)],
      ),
    ).toEqual({
      version: 1,
      etag,
      bindings: [
        { role: "roles/run.viewer", members: ["allUsers"] },
        { role: INVOKER_ROLE, members: [`serviceAccount:${EDGE_SA}`] },
      ],
    });
  });

  it("never makes the runner public", () => {
    expect(() => runnerInvokerPolicy(undefined, ["allUsers"])).toThrow(/never invoke/);
    expect(() => runnerInvokerPolicy(undefined, [])).toThrow(/needs an invoker/);
  });
});

describe("wrangler deploy --dry-run (the edge)", () => {
  const outdir = mkdtempSync(path.join(tmpdir(), "ozen-wrangler-"));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it("bundles the Worker with its bindings, offline", async () => {
    const r = await run(path.join(repo, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_API_TOKEN: "",
      CLOUDFLARE_ACCOUNT_ID: "",
    });
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toContain("--dry-run: exiting now.");
    for (const binding of ["CALL_SESSION", "EDGE_METRICS", "ACCOUNT_HUB", "DB"]) expect(out).toContain(binding);
    expect(readdirSync(outdir)).toContain("index.js");
  }, 120_000);
});
