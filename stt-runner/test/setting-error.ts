/** Test helper: the SettingError a settings loader throws. */
import { expect } from "vitest";
import { SettingError } from "@ozen/shared";

/** The SettingError `read` throws (fails the test when it throws none or another error). */
export function settingError(read: () => unknown): SettingError {
  try {
    read();
  } catch (e) {
    expect(e).toBeInstanceOf(SettingError);
    return e as SettingError;
  }
  throw new Error("expected a SettingError");
}
