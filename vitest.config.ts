import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Test folders in the order their files start: real processes, network namespaces and browsers first. */
const FOLDER_ORDER = ["test/lan/", "test/integration/", "test/e2e/"];

/**
 * Starts the slowest kinds of test file first, so the two workers finish
 * together. A fresh clone (CI's) has no record of past durations, so vitest
 * kept the files' path order: the LAN lab, one file of five minutes, started
 * last and ran alone at the end while the other worker sat idle. Within a
 * folder, vitest's own order (longest first once it has timed them).
 */
class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const at = FOLDER_ORDER.findIndex((folder) => file.moduleId.includes(`/${folder}`));
      return at < 0 ? FOLDER_ORDER.length : at;
    };
    const sorted = await super.sort(files);
    return sorted
      .map((file, index) => ({ file, index }))
      .sort((a, b) => rank(a.file) - rank(b.file) || a.index - b.index)
      .map(({ file }) => file);
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real processes; two cores are shared by all of them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    sequence: { sequencer: SlowFirstSequencer },
    // The CLI's defaults (data dir, model library) never reach a developer's own: the processes tests start inherit these.
    env: { KILN_MODELS: "", KILN_DATA_DIR: "", XDG_DATA_HOME: join(tmpdir(), "kiln-tests-xdg-data") },
  },
});
