/**
 * npm run build:kernels — compiles the WebAssembly text kernels of the node's
 * pipelines into the binaries committed beside them (the node loads the
 * binary; wabt is a build tool only). A unit test compiles them again and
 * compares, so a .wat edited without rebuilding fails CI.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";

export const KERNEL_SOURCES = [
  fileURLToPath(new URL("../farm-node/pipelines/kernels/latent-kernels.wat", import.meta.url)),
];

/** The .wasm path for a .wat source. */
export function binaryPath(source: string): string {
  return source.replace(/\.wat$/, ".wasm");
}

export async function compileKernel(source: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(source, readFileSync(source, "utf8"), { simd: true });
  try {
    module.validate();
    return module.toBinary({ log: false, write_debug_names: false }).buffer;
  } finally {
    module.destroy();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const source of KERNEL_SOURCES) {
    const bytes = await compileKernel(source);
    writeFileSync(binaryPath(source), bytes);
    process.stdout.write(`${binaryPath(source)}: ${bytes.length} bytes\n`);
  }
}
