#!/usr/bin/env node
// The `ozen` CLI: TypeScript run through tsx, so the CLI and the tests run the same sources.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
