/**
 * The runner's Dockerfile, read as text (no Docker daemon in the tests): the CPU image stays the
 * default, the GPU target brings the CUDA libraries faster-whisper documents and fetches the
 * Hebrew model with the project's own command into the folder WHISPER_MODEL names.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { gpuRunnerService } from "../cloudrun/service.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dockerfile = readFileSync(path.join(repoRoot, "stt-runner/Dockerfile"), "utf8");
const gpuRequirements = readFileSync(path.join(repoRoot, "stt-runner/whisper/requirements-gpu.txt"), "utf8");

/** The instructions of each stage, continuation lines joined, comments dropped. */
function stages(text: string): { name: string; lines: string[] }[] {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const out: { name: string; lines: string[] }[] = [];
  for (const line of lines) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ name: from[1] ?? "", lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

function arg(lines: string[], name: string): string | undefined {
  return lines.map((l) => new RegExp(`^ARG ${name}=(\\S+)$`).exec(l)?.[1]).find((v) => v !== undefined);
}

describe("stt-runner/Dockerfile", () => {
  const all = stages(dockerfile);
  const gpu = all.find((s) => s.name === "gpu")!;

  it("builds the CPU image by default (the last stage) and the GPU one as --target gpu", () => {
    expect(all.map((s) => s.name)).toEqual(["runner-base", "gpu", "cpu"]);
    expect(all.at(-1)!.lines).toContain("ENV HF_HUB_OFFLINE=1");
  });

  it("installs cuBLAS and cuDNN 9 for CUDA 12 from PyPI in the GPU image, and lets the loader find them", () => {
    expect(gpu.lines.some((l) => /pip install .*-r stt-runner\/whisper\/requirements-gpu\.txt/.test(l))).toBe(true);
    expect(gpu.lines.some((l) => /ld\.so\.conf\.d\/.*&& ldconfig/.test(l))).toBe(true);
    expect(gpuRequirements).toMatch(/^nvidia-cublas-cu12==12\.\d+(\.\d+)*$/m);
    expect(gpuRequirements).toMatch(/^nvidia-cudnn-cu12==9\.\d+(\.\d+)*$/m);
  });

  it("fetches the ivrit-ai model at build time with `ozen_whisper fetch`, into the folder WHISPER_MODEL names", () => {
    const repo = arg(gpu.lines, "WHISPER_HF_REPO");
    expect(repo).toBe("ivrit-ai/whisper-large-v3-turbo-ct2");
    const fetchAt = gpu.lines.findIndex((l) => l.includes('-m ozen_whisper fetch "$WHISPER_HF_REPO"'));
    expect(fetchAt).toBeGreaterThan(-1);
    // fetch puts org/name in .models/org--name
    expect(arg(gpu.lines, "WHISPER_MODEL")).toBe(`/app/stt-runner/whisper/.models/${repo!.replace("/", "--")}`);
    expect(gpu.lines).toContain("ENV WHISPER_MODEL=$WHISPER_MODEL");
    // nothing is downloaded once the image is built
    expect(gpu.lines.indexOf("ENV HF_HUB_OFFLINE=1")).toBeGreaterThan(fetchAt);
  });

  it("runs the worker on the GPU in float16, as the engine the GPU service expects", () => {
    expect(gpu.lines).toContain("ENV OZEN_WHISPER_DEVICE=cuda");
    expect(gpu.lines).toContain("ENV OZEN_WHISPER_COMPUTE=float16");
    expect(gpu.lines).toContain("ENV OZEN_ENGINE=whisper");
    const env = gpuRunnerService({ project: "p", region: "europe-west4", serviceId: "s", image: "i" }).service.template
      .containers[0]!.env;
    expect(env).toContainEqual({ name: "OZEN_ENGINE", value: "whisper" });
  });
});
