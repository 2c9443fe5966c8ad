/**
 * A whisper model directory's size (`whisperModelParameters`), read from the variable headers of
 * its `model.bin`: on sparse files written here with CTranslate2's layout and the byte counts of
 * real conversions (no weights, holes where they would be), on what is not such a file, and on
 * the models `make install` put on this machine.
 */
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultMaxCalls, whisperSizeClass } from "@ozen/shared";
import { whisperModelParameters } from "../src/engines/whisper/model-dir.js";
import { listModels } from "../../tools/src/whisper-env.js";

const root = mkdtempSync(path.join(os.tmpdir(), "ozen-model-dir-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const DTYPE = { float32: 0, int8: 1, float16: 4 } as const;
const WIDTH = { float32: 4, int8: 1, float16: 2 } as const;
type Dtype = keyof typeof DTYPE;

interface Variable {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dtype: Dtype;
}

let dirs = 0;

/**
 * A model directory whose `model.bin` has CTranslate2's headers for `variables` (binary `version`,
 * spec `spec`) and holes for their data: as long as the real file, none of its bytes on disk.
 */
function sparseModel(variables: readonly Variable[], o: { version?: number; spec?: string } = {}): string {
  const dir = path.join(root, `model-${++dirs}`);
  mkdirSync(dir);
  const fd = openSync(path.join(dir, "model.bin"), "w");
  let at = 0;
  const write = (buf: Buffer) => {
    writeSync(fd, buf, 0, buf.length, at);
    at += buf.length;
  };
  const u8 = (n: number) => write(Buffer.from([n]));
  const u16 = (n: number) => write(Buffer.from(new Uint16Array([n]).buffer));
  const u32 = (n: number) => write(Buffer.from(new Uint32Array([n]).buffer));
  const string = (s: string) => {
    u16(Buffer.byteLength(s) + 1);
    write(Buffer.concat([Buffer.from(s), Buffer.from([0])]));
  };
  u32(o.version ?? 6);
  string(o.spec ?? "WhisperSpec");
  u32(3); // the spec's revision
  u32(variables.length);
  for (const v of variables) {
    string(v.name);
    u8(v.dims.length);
    for (const d of v.dims) u32(d);
    u8(DTYPE[v.dtype]);
    const bytes = v.dims.reduce((a, b) => a * b, 1) * WIDTH[v.dtype];
    u32(bytes);
    at += bytes; // a hole
  }
  u32(0); // no aliases
  ftruncateSync(fd, at);
  closeSync(fd);
  return dir;
}

/** A model of about `parameters`, in one matrix per million (a real model's are of that order) and `dtype`. */
function modelOf(parameters: number, dtype: Dtype): string {
  const millions = Math.floor(parameters / 1e6);
  const variables: Variable[] = Array.from({ length: millions }, (_, i) => ({
    name: `encoder/layer_${i}/weight`,
    dims: [1000, 1000],
    dtype,
  }));
  variables.push({ name: "decoder/rest", dims: [parameters - millions * 1e6], dtype });
  return sparseModel(variables);
}

describe("whisperModelParameters", () => {
  it("tells tiny in float16 from base in int8, whose model.bin are about as large", () => {
    const tinyFloat16 = modelOf(37_764_873, "float16"); // tiny.en's variables
    const baseInt8 = modelOf(72_603_147, "int8"); // base's
    expect(statSync(path.join(tinyFloat16, "model.bin")).size).toBeGreaterThan(
      statSync(path.join(baseInt8, "model.bin")).size,
    );
    expect(whisperModelParameters(tinyFloat16)).toBe(37_764_873);
    expect(whisperModelParameters(baseInt8)).toBe(72_603_147);
    expect(whisperSizeClass(whisperModelParameters(tinyFloat16)!)).toBe("tiny");
    expect(whisperSizeClass(whisperModelParameters(baseInt8)!)).toBe("base");
  });

  it("gives each published size its class, in float32, float16 and int8", () => {
    const published = { tiny: 39e6, base: 74e6, small: 244e6, medium: 769e6, large: 1550e6 } as const;
    for (const [size, parameters] of Object.entries(published)) {
      for (const dtype of ["float32", "float16", "int8"] as const) {
        const n = whisperModelParameters(modelOf(parameters, dtype));
        expect(n, `${size} ${dtype}`).toBe(parameters);
        expect(whisperSizeClass(n!), `${size} ${dtype}`).toBe(size);
      }
    }
  });

  it("is undefined, without throwing, where it cannot tell", () => {
    expect(whisperModelParameters(path.join(root, "no-such-directory"))).toBeUndefined();
    const empty = path.join(root, "empty");
    mkdirSync(empty);
    expect(whisperModelParameters(empty), "no model.bin").toBeUndefined();
    const notAFile = path.join(root, "model-bin-is-a-directory");
    mkdirSync(path.join(notAFile, "model.bin"), { recursive: true });
    expect(whisperModelParameters(notAFile), "model.bin unreadable").toBeUndefined();
    const zeros = path.join(root, "zeros");
    mkdirSync(zeros);
    const fd = openSync(path.join(zeros, "model.bin"), "w");
    ftruncateSync(fd, 75_000_000); // as large as tiny in float16, no header
    closeSync(fd);
    expect(whisperModelParameters(zeros), "no header").toBeUndefined();
    const one: Variable[] = [{ name: "w", dims: [1000, 1000], dtype: "float16" }];
    expect(whisperModelParameters(sparseModel(one, { version: 5 })), "another binary version").toBeUndefined();
    expect(whisperModelParameters(sparseModel(one, { spec: "TransformerSpec" })), "not whisper").toBeUndefined();
  });

  it("is undefined for a model.bin cut short of what its headers say", () => {
    const dir = modelOf(39e6, "float16");
    const file = path.join(dir, "model.bin");
    const fd = openSync(file, "r+");
    ftruncateSync(fd, statSync(file).size - 1_000_000);
    closeSync(fd);
    expect(whisperModelParameters(dir)).toBeUndefined();
  });

  it("decides the default of OZEN_MAX_CALLS for a directory whose name says nothing", () => {
    const tiny = modelOf(37_764_873, "float16");
    const base = modelOf(72_603_147, "int8");
    const basis = (dir: string) => ({
      engine: "whisper",
      whisperModel: dir,
      whisperModelParameters: whisperModelParameters(dir),
      cpus: 4,
    });
    expect(defaultMaxCalls(basis(tiny))).toBe(4);
    expect(defaultMaxCalls(basis(base))).toBe(2);
  });
});

describe("the models installed here", () => {
  const listed = listModels();
  // those the worker names by a size alone (tiny.en, base; not large-v3-turbo)
  const sizes: readonly string[] = ["tiny", "base", "small", "medium", "large"];
  const models = (listed.ok ? listed.models : []).filter((m) => sizes.includes(m.name.replace(/\.en$/, "")));

  it.skipIf(models.length === 0)("read as the size the worker names them", () => {
    for (const m of models) {
      const parameters = whisperModelParameters(m.path);
      expect(parameters, m.path).toBeDefined();
      expect(whisperSizeClass(parameters!), m.name).toBe(m.name.replace(/\.en$/, ""));
    }
  });
});
