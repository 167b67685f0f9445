import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real processes; two cores are shared by all of them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    // The CLI's defaults (data dir, model library) never reach a developer's own: the processes tests start inherit these.
    env: { KILN_MODELS: "", KILN_DATA_DIR: "", XDG_DATA_HOME: join(tmpdir(), "kiln-tests-xdg-data") },
  },
});
