import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SettingError, readSettings, setting, settingsMarkdown, splitList } from "../src/index.js";

/** The message `read` throws, asserting it is a SettingError. */
function refusal(read: () => unknown): string {
  try {
    read();
  } catch (e) {
    expect(e).toBeInstanceOf(SettingError);
    return (e as SettingError).message;
  }
  throw new Error("expected a SettingError");
}

describe("numbers", () => {
  const spec = {
    BLOCK_MS: setting.int({ description: "block", default: 100, min: 20, max: 250 }),
    LEVEL_DBFS: setting.number({ description: "level", default: -40, min: -90, max: 0 }),
  };

  it("reads any whole number in range as itself, and unset or empty as the default", () => {
    fc.assert(
      fc.property(fc.integer({ min: 20, max: 250 }), (n) => {
        expect(readSettings(spec, { BLOCK_MS: String(n) }).BLOCK_MS).toBe(n);
      }),
    );
    expect(readSettings(spec, {})).toEqual({ BLOCK_MS: 100, LEVEL_DBFS: -40 });
    expect(readSettings(spec, { BLOCK_MS: "", LEVEL_DBFS: "" })).toEqual({ BLOCK_MS: 100, LEVEL_DBFS: -40 });
  });

  it("refuses out of range, fractional and non-numeric values, naming the variable, the value and the range", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ max: 19 }),
          fc.integer({ min: 251 }),
          fc.constantFrom("25.5", "loud", "0x", "NaN", "Infinity"),
        ),
        (v) => {
          expect(refusal(() => readSettings(spec, { BLOCK_MS: String(v) }))).toBe(
            `BLOCK_MS is ${JSON.stringify(String(v))}, expected a whole number from 20 to 250`,
          );
        },
      ),
    );
    expect(readSettings(spec, { LEVEL_DBFS: "-12.5" }).LEVEL_DBFS).toBe(-12.5);
    expect(refusal(() => readSettings(spec, { LEVEL_DBFS: "loud" }))).toBe(
      'LEVEL_DBFS is "loud", expected a number from -90 to 0',
    );
  });

  it("takes a bound from a setting declared before it, and names that setting in the refusal", () => {
    const backoff = {
      MIN_MS: setting.int({ description: "min", default: 100, min: 10, max: 60_000 }),
      MAX_MS: setting.int({ description: "max", default: 5000, min: { setting: "MIN_MS" }, max: 300_000 }),
    };
    expect(readSettings(backoff, { MIN_MS: "500", MAX_MS: "500" })).toEqual({ MIN_MS: 500, MAX_MS: 500 });
    expect(refusal(() => readSettings(backoff, { MIN_MS: "500", MAX_MS: "400" }))).toBe(
      'MAX_MS is "400", expected a whole number from 500 (MIN_MS) to 300000',
    );
    expect(backoff.MAX_MS.allowedText).toBe("a whole number from `MIN_MS` to 300000");
  });
});

describe("text, choices and switches", () => {
  it("requires a required setting, saying what it expects", () => {
    const spec = { RUNNER_URL: setting.url({ description: "runner", required: true, schemes: ["ws", "wss"] }) };
    expect(refusal(() => readSettings(spec, {}))).toBe(
      "RUNNER_URL is not set, expected a URL starting ws:// or wss://",
    );
    expect(refusal(() => readSettings(spec, { RUNNER_URL: "" }))).toMatch(/^RUNNER_URL is not set/);
    expect(readSettings(spec, { RUNNER_URL: "wss://runner.example/relay" }).RUNNER_URL).toBe(
      "wss://runner.example/relay",
    );
  });

  it("reads an origin-only URL without its trailing slashes and refuses one with a path", () => {
    const spec = {
      BASE: setting.url({ description: "base", required: true, schemes: ["https", "http"], originOnly: true }),
    };
    expect(readSettings(spec, { BASE: "https://edge.example:8443//" }).BASE).toBe("https://edge.example:8443");
    expect(refusal(() => readSettings(spec, { BASE: "https://edge.example/x" }))).toBe(
      'BASE is "https://edge.example/x", expected https://host[:port] or http://host[:port] with no path',
    );
  });

  it("reads one of the allowed values and refuses another, listing them", () => {
    const spec = { MODE: setting.choice({ description: "mode", values: ["connect", "start"], default: "connect" }) };
    expect(readSettings(spec, { MODE: "start" }).MODE).toBe("start");
    expect(refusal(() => readSettings(spec, { MODE: "both" }))).toBe('MODE is "both", expected one of connect, start');
  });

  it("reads a switch in its own words only", () => {
    const spec = {
      SIGNATURE: setting.bool({ description: "on/off", default: true }),
      INSECURE: setting.bool({ description: "true/false", default: false, words: ["true", "false"] }),
    };
    expect(readSettings(spec, { SIGNATURE: "off", INSECURE: "true" })).toEqual({ SIGNATURE: false, INSECURE: true });
    expect(refusal(() => readSettings(spec, { SIGNATURE: "true" }))).toBe('SIGNATURE is "true", expected on or off');
    expect(refusal(() => readSettings(spec, { INSECURE: "yes" }))).toBe('INSECURE is "yes", expected true or false');
  });

  it("checks text against its pattern, and refuses a value that is not text", () => {
    const spec = {
      LANGUAGE: setting.string({
        description: "lang",
        default: "he",
        pattern: /^[a-z]{2,3}$/,
        expected: "a code like he",
      }),
    };
    expect(refusal(() => readSettings(spec, { LANGUAGE: "Hebrew" }))).toBe(
      'LANGUAGE is "Hebrew", expected a code like he',
    );
    expect(refusal(() => readSettings(spec, { LANGUAGE: 7 }))).toBe("LANGUAGE is 7, expected text");
  });
});

describe("lists", () => {
  it("splits, trims and drops empty items, and checks each against the allowed ones", () => {
    const spec = { EVENTS: setting.list({ description: "events", of: ["final", "partial"], default: ["final"] }) };
    expect(readSettings(spec, { EVENTS: " partial , final,," }).EVENTS).toEqual(["partial", "final"]);
    expect(readSettings(spec, {}).EVENTS).toEqual(["final"]);
    expect(refusal(() => readSettings(spec, { EVENTS: "final,finals" }))).toBe(
      'EVENTS is "final,finals", which names "finals", expected a comma-separated list of final, partial',
    );
  });

  it("keeps empty items and an empty value where they mean something", () => {
    const spec = {
      MODELS: setting.list({ description: "models", keepEmptyItems: true, emptyIsValue: true }),
      HINTS: setting.list({ description: "hints", separator: "comma-or-bar", emptyIsValue: true }),
    };
    expect(readSettings(spec, { MODELS: "telephony,", HINTS: "a|b, c" })).toEqual({
      MODELS: ["telephony", ""],
      HINTS: ["a", "b", "c"],
    });
    expect(readSettings(spec, { MODELS: "", HINTS: "" })).toEqual({ MODELS: [""], HINTS: [] });
    expect(readSettings(spec, {})).toEqual({ MODELS: undefined, HINTS: undefined });
  });

  it("splitList reads any list it is given back, joined by commas or bars", () => {
    const item = fc.stringMatching(/^[^,|\s]+( [^,|\s]+)?$/);
    fc.assert(
      fc.property(fc.array(item), fc.constantFrom(",", "|", " , "), (items, sep) => {
        expect(splitList(items.join(sep))).toEqual(items);
      }),
    );
  });
});

describe("secrets", () => {
  it("never shows a secret's text in a refusal, only its length", () => {
    const spec = { HOOK_SECRET: setting.secret({ description: "key", minLength: 16 }) };
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 15 }), (short) => {
        const value = `S3CR3T${short}`.slice(0, 15);
        const message = refusal(() => readSettings(spec, { HOOK_SECRET: value }));
        expect(message).toBe(
          `HOOK_SECRET is a secret of ${value.length} characters, expected a secret of at least 16 characters`,
        );
        expect(message).not.toContain(value);
      }),
    );
    expect(readSettings(spec, { HOOK_SECRET: "0123456789abcdef" }).HOOK_SECRET).toBe("0123456789abcdef");
    expect(readSettings(spec, {}).HOOK_SECRET).toBeUndefined();
  });
});

describe("settingsMarkdown", () => {
  const shared = setting.list({ description: "Phrase hints.", default: [] });
  const doc = (areas: Parameters<typeof settingsMarkdown>[0]["deployables"][number]["areas"]) =>
    settingsMarkdown({ title: "Settings", intro: "All of them.", deployables: [{ title: "Runner", areas }] });

  it("lists each setting with its description, default and what is allowed", () => {
    const md = doc([
      {
        title: "Server",
        settings: {
          PORT: setting.int({ description: "Listening port.", default: 8081, min: 0, max: 65_535 }),
          URL: setting.url({ description: "Where.", required: true, schemes: ["wss"] }),
          TOKEN: setting.secret({ description: "A | token." }),
        },
      },
    ]);
    expect(md).toContain(
      "- **`PORT`**: Listening port.\\\n  default: `8081`; allowed: a whole number from 0 to 65535\n",
    );
    expect(md).toContain("- **`URL`**: Where.\\\n  required; allowed: `wss://`\n");
    expect(md).toContain("- **`TOKEN`**: A | token.\\\n  default: (unset); allowed: a secret\n");
  });

  it("lists a setting two areas share once, and refuses two declarations of one name", () => {
    const md = doc([
      { title: "Google", settings: { PHRASES: shared } },
      { title: "Whisper", settings: { HINTS: setting.list({ description: "Hints." }), PHRASES: shared } },
    ]);
    expect(md.match(/`PHRASES`/g)).toHaveLength(1);
    const other = setting.list({ description: "Phrase hints.", default: [] });
    expect(() =>
      doc([
        { title: "A", settings: { PHRASES: shared } },
        { title: "B", settings: { PHRASES: other } },
      ]),
    ).toThrow("PHRASES is declared twice in Runner");
  });
});
