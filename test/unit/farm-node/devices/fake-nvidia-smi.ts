import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const FAKE_NVIDIA_SMI_DIR = fileURLToPath(new URL("../../../fixtures/bin/", import.meta.url));

export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`../../../fixtures/nvidia-smi/${name}`, import.meta.url));
}

export function readFixture(name: string): string {
  return readFileSync(fixturePath(name), "utf8");
}

/** PATH with the fake nvidia-smi first; the rest stays so `#!/usr/bin/env sh` still finds sh. */
export function pathWithFakeNvidiaSmi(): string {
  return `${FAKE_NVIDIA_SMI_DIR}:${process.env.PATH ?? ""}`;
}
