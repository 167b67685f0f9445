import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { binaryPath, compileKernel, KERNEL_SOURCES } from "../../../../build/wasm-kernels";

describe("the committed WebAssembly kernels", () => {
  it.each(KERNEL_SOURCES)(
    "are their text source compiled (run npm run build:kernels after editing %s)",
    async (source) => {
      const committed = readFileSync(binaryPath(source));
      expect(Buffer.from(await compileKernel(source)).equals(committed)).toBe(true);
    },
  );
});
