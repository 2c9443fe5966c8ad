import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "infra/test/**/*.test.ts",
      "shared/test/**/*.test.ts",
      "edge/test/**/*.test.ts",
      "stt-runner/test/**/*.test.ts",
      "tools/test/**/*.test.ts",
      "clients/ts/test/**/*.test.ts",
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // workerd and the simulators are real processes and sockets: keep files from fighting for 2 cores
    fileParallelism: false,
  },
});
