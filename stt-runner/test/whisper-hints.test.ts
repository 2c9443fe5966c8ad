/**
 * A call's phrase hints reach the whisper worker's decoder (its `hotwords`) from the relay start:
 * the real worker with tiny.en, the project's rare-name utterance ("Please transfer me to Aoife
 * Nakagawa.", tools/speech/hints): without the hint tiny.en hears another name; with it, this one.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeMulaw } from "@ozen/shared";
import { loadAudio8k } from "../../tools/src/audio.js";
import { PROJECT_SPEECH_DIR, RARE_NAME_SPEECH } from "../../tools/src/speech-data.js";
import type { EngineFinal } from "../src/engines/engine.js";
import { WhisperEngine } from "../src/engines/whisper/engine.js";
import { callOf, callStart, play, testWhisperConfig, whisperSkipReason, words } from "./whisper-helpers.js";

const skip = whisperSkipReason();

describe.skipIf(skip !== undefined)("whisper phrase hints (real worker, tiny.en)", () => {
  let engine: WhisperEngine;
  beforeAll(async () => {
    ({ engine } = await WhisperEngine.start(testWhisperConfig()));
  }, 120_000);
  afterAll(async () => {
    await engine?.close();
  });

  const audio = () =>
    callOf(500, decodeMulaw(loadAudio8k(path.join(PROJECT_SPEECH_DIR, RARE_NAME_SPEECH.file)).mulaw), 1000);

  async function finalOf(start: ReturnType<typeof callStart>): Promise<string[]> {
    const finals: EngineFinal[] = [];
    const failures: string[] = [];
    const session = engine.open(start, {
      interim() {},
      final: (f) => finals.push(f),
      failed: (f) => failures.push(f.code),
    });
    await play(session, audio(), { speed: Infinity });
    await session.end();
    expect(failures).toEqual([]);
    return words(finals.map((f) => f.text).join(" "));
  }

  it("a hint in the relay start changes the final of an utterance with a rare name", async () => {
    const plain = await finalOf(callStart("CAplainname"));
    const hinted = await finalOf({ ...callStart("CAhintedname"), phrases: [RARE_NAME_SPEECH.hint] });
    expect(plain).not.toContain("aoife");
    expect(hinted).toEqual(["please", "transfer", "me", "to", "aoife", "nakagawa"]);
  }, 120_000);

  it("a call's own ozen_phrases (a client without start.phrases) is a hint too; a refused one is none", async () => {
    const own = await finalOf(callStart("CAownparam", { ozen_phrases: RARE_NAME_SPEECH.hint }));
    expect(own).toContain("aoife");
    const refused = await finalOf(callStart("CAbadparam", { ozen_phrases: `${RARE_NAME_SPEECH.hint}\u0000` }));
    expect(refused).not.toContain("aoife");
  }, 120_000);
});
