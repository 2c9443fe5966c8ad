/**
 * ozen stack: the local stack (the edge on workerd and a runner process beside it) for as long as
 * one wants it, for trying an agent against it and for the client libraries' tests, which start it
 * from another language. It prints one JSON line with where it is and its tokens, then runs until
 * SIGINT/SIGTERM (or, with `--until-stdin-closes`, until its parent closes its stdin: a test
 * harness that dies takes the stack with it).
 */
import { fail, parseCommand } from "./args.js";
import { STACK } from "./commands.js";
import { startLocalStack } from "./local-stack.js";
import { bestMultilingual, findModel, listModels } from "./whisper-env.js";

/** `NAME=VALUE` settings into an object; a bad one is a usage error. */
function edgeSettings(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const at = p.indexOf("=");
    if (at <= 0) fail(`--set ${JSON.stringify(p)}: expected NAME=VALUE`);
    out[p.slice(0, at)] = p.slice(at + 1);
  }
  return out;
}

function whisperEnv(model: string | undefined, language: "he" | "en"): NodeJS.ProcessEnv {
  const listed = listModels();
  if (!listed.ok) fail(listed.message);
  const m = model
    ? findModel(listed.models, model)
    : language === "en"
      ? (listed.models.find((x) => x.name === "tiny.en") ?? bestMultilingual(listed.models))
      : bestMultilingual(listed.models);
  if (!m || "error" in m) fail(m ? m.error : "no whisper model here: run `make install`");
  return { WHISPER_MODEL: m.path, WHISPER_LANGUAGE: language, HF_HUB_OFFLINE: "1" };
}

export async function stack(argv: string[]): Promise<void> {
  const { values } = parseCommand(STACK, argv);
  const engine = values.engine ?? "null";
  if (engine !== "null" && engine !== "whisper") fail(`--engine is null or whisper, not ${JSON.stringify(engine)}`);
  const language = values.language ?? "en";
  if (language !== "en" && language !== "he") fail(`--language is he or en, not ${JSON.stringify(language)}`);
  const vars = edgeSettings(values.set ?? []);
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) fail("--port is a TCP port");
  const s = await startLocalStack({
    runner: { process: engine, ...(engine === "whisper" ? { env: whisperEnv(values.model, language) } : {}) },
    vars,
    ...(port ? { port } : {}),
    ...(values["api-token"] ? { apiToken: values["api-token"] } : {}),
  });
  console.log(
    JSON.stringify({
      url: s.url,
      publicUrl: s.publicUrl,
      authToken: s.authToken,
      apiToken: s.apiToken,
      runnerPort: s.runnerPort,
      engine,
    }),
  );
  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    await s.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  if (values["until-stdin-closes"]) {
    process.stdin.resume();
    process.stdin.once("end", () => void stop());
    process.stdin.once("close", () => void stop());
  }
}
