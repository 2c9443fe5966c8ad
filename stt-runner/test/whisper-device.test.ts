/**
 * The worker's device settings (OZEN_WHISPER_DEVICE, OZEN_WHISPER_COMPUTE): read and checked by
 * the runner, passed on the worker's command line, and resolved by the worker (its `ready` says
 * what it chose; `auto` on this GPU-less machine is the CPU with int8).
 */
import { describe, expect, it } from "vitest";
import { SettingError } from "@ozen/shared";
import { loadWhisperConfig, workerCommandArgs } from "../src/engines/whisper/config.js";
import { WhisperEngine } from "../src/engines/whisper/engine.js";
import { testWhisperConfig, whisperSkipReason } from "./whisper-helpers.js";

const skip = whisperSkipReason();

function settingError(env: Record<string, string>): SettingError {
  try {
    loadWhisperConfig(env);
  } catch (e) {
    if (e instanceof SettingError) return e;
    throw e;
  }
  throw new Error("expected a SettingError");
}

describe("whisper device settings", () => {
  it("passes auto for both by default, after the model and before WHISPER_WORKER_ARGS", () => {
    expect(workerCommandArgs(loadWhisperConfig({ WHISPER_MODEL: "base", WHISPER_WORKER_ARGS: "--pool 2" }))).toEqual([
      "-m",
      "ozen_whisper",
      "serve",
      "--model",
      "base",
      "--device",
      "auto",
      "--compute-type",
      "auto",
      "--pool",
      "2",
    ]);
  });

  it("passes the device and compute type it is given", () => {
    const args = workerCommandArgs(
      loadWhisperConfig({ OZEN_WHISPER_DEVICE: "cuda", OZEN_WHISPER_COMPUTE: "int8_float16" }),
    );
    expect(args.slice(5, 9)).toEqual(["--device", "cuda", "--compute-type", "int8_float16"]);
  });

  it("refuses a device it does not know, naming the setting and the choices", () => {
    const e = settingError({ OZEN_WHISPER_DEVICE: "gpu" });
    expect(e.setting).toBe("OZEN_WHISPER_DEVICE");
    expect(e.message).toBe('OZEN_WHISPER_DEVICE is "gpu", expected one of auto, cpu, cuda');
  });

  it("refuses a compute type CTranslate2 does not have", () => {
    const e = settingError({ OZEN_WHISPER_COMPUTE: "fp16" });
    expect(e.setting).toBe("OZEN_WHISPER_COMPUTE");
    expect(e.message).toContain("expected one of auto, int8, int8_float32, int8_float16");
  });

  it("refuses a GPU-only compute type on the CPU", () => {
    const e = settingError({ OZEN_WHISPER_DEVICE: "cpu", OZEN_WHISPER_COMPUTE: "float16" });
    expect(e.setting).toBe("OZEN_WHISPER_COMPUTE");
    expect(e.message).toBe(
      "OZEN_WHISPER_COMPUTE is float16, which CTranslate2 runs only on a GPU, and OZEN_WHISPER_DEVICE is cpu, " +
        "expected auto, int8, int8_float32, int16 or float32 on the CPU",
    );
  });

  it.skipIf(skip)(
    "the worker runs what the runner passed: int16 on the CPU, auto resolved to cpu/int8",
    async () => {
      const explicit = await WhisperEngine.start(
        testWhisperConfig({ OZEN_WHISPER_DEVICE: "cpu", OZEN_WHISPER_COMPUTE: "int16" }),
      );
      try {
        expect([explicit.ready.device, explicit.ready.compute_type]).toEqual(["cpu", "int16"]);
      } finally {
        await explicit.engine.close();
      }
      const auto = await WhisperEngine.start(testWhisperConfig());
      try {
        // this machine has no GPU (CTranslate2 counts none): auto is the CPU, with int8
        expect([auto.ready.device, auto.ready.compute_type]).toEqual(["cpu", "int8"]);
      } finally {
        await auto.engine.close();
      }
    },
    240_000,
  );
});
