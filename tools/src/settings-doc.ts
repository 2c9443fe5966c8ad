/**
 * docs/settings.md, generated from the settings' declarations (edge/src/config.ts and
 * stt-runner/src/settings.ts gather them) and formatted as the repository's Prettier would:
 *   node --import tsx tools/src/settings-doc.ts > docs/settings.md
 * tools/test/settings-doc.test.ts fails when the committed page differs.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { settingsMarkdown } from "@ozen/shared";
import type { SettingsDeployable } from "@ozen/shared";
import { EDGE_SETTINGS } from "../../edge/src/config.js";
import { RUNNER_SETTINGS } from "../../stt-runner/src/settings.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Everything the edge and the runner read, in the order docs/settings.md lists it. */
export const DEPLOYABLES: readonly SettingsDeployable[] = [EDGE_SETTINGS, RUNNER_SETTINGS];

const INTRO = [
  "Every setting the edge and the runner read, generated from their declarations",
  "(`node --import tsx tools/src/settings-doc.ts > docs/settings.md`; a test fails when this page",
  "differs from them). Unset and empty both mean the default unless a setting says otherwise. A",
  "wrong value is refused with a message naming the setting, its value and what is allowed; secrets",
  "are never shown.",
].join(" ");

/** The page's Markdown, formatted with the repository's Prettier settings. */
export async function settingsDoc(): Promise<string> {
  const target = path.join(repo, "docs", "settings.md");
  const options = (await prettier.resolveConfig(target)) ?? {};
  const md = settingsMarkdown({ title: "Settings", intro: INTRO, deployables: DEPLOYABLES });
  return prettier.format(md, { ...options, filepath: target });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(await settingsDoc());
}
