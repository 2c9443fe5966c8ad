/**
 * Which of Google's errors move a call down its model chain: the texts Google sends for a model
 * that a language or a location lacks (v1 and v2), and the errors that must not be mistaken for it.
 */
import { describe, expect, it } from "vitest";
import { isModelUnavailable } from "../src/engines/google/model-errors.js";

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

describe("isModelUnavailable", () => {
  it.each([
    [
      "v1: the model lacks the language",
      INVALID_ARGUMENT,
      "Invalid recognition 'config': The requested model is currently not supported for language : iw-IL.",
    ],
    [
      "v2: the location does not serve the model",
      INVALID_ARGUMENT,
      'The model "chirp_3" does not exist in the location named "global".',
    ],
    [
      "v2: the model lacks the language in that location",
      INVALID_ARGUMENT,
      'The language "iw-IL" is not supported by the model "chirp_3" in the location named "us".',
    ],
    ["v2: a location answering NOT_FOUND for the model", NOT_FOUND, 'The model "chirp_2" was not found in "global".'],
  ])("moves down on %s", (_what, code, message) => {
    expect(isModelUnavailable(code, message)).toBe(true);
  });

  it.each([
    ["a feature the model lacks", INVALID_ARGUMENT, "Recognizer does not support feature: word_level_confidence"],
    ["unsupported config fields", INVALID_ARGUMENT, "Config contains unsupported fields"],
    ["a model text under another status", 14, 'The model "chirp_3" does not exist in the location named "global".'],
    ["a missing recognizer", NOT_FOUND, "Unable to find Recognizer projects/p/locations/global/recognizers/x."],
    ["a bad audio config", INVALID_ARGUMENT, "Invalid audio config: sample rate 8000 is not supported for encoding"],
  ])("does not move down on %s", (_what, code, message) => {
    expect(isModelUnavailable(code, message)).toBe(false);
  });
});
