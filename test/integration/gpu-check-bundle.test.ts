import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "../support/temp-dir";

/**
 * `npm run gpu:check:bundle` and the bundle's run.sh, end to end on this
 * machine: no GPU here, so nvidia-smi is the recorded fake (the outermost
 * seam) and the worker of that "GPU" finds no CUDA provider and no Vulkan
 * driver, falls back to the CPU and says why. The bundle is made without the
 * Vulkan loader's .deb (a download) and run with PATH holding nothing of the
 * project: what it runs is what it carries.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FAKE_BIN = fileURLToPath(new URL("../fixtures/bin/", import.meta.url));
const RTX_3090 = fileURLToPath(new URL("../fixtures/nvidia-smi/one-rtx-3090.csv", import.meta.url));

interface CheckReport {
  nvidiaSmi: { ok: boolean; reason?: string };
  devices: Array<{
    name: string;
    kind: string;
    backend: string;
    providerNotes: string[];
    nvidiaSmi: { vramTotalMb: number; temperatureC: number } | null;
    kilnDemoImagesPerS512: number | null;
    tinySdMsPerImage: number | null;
    errors: string[];
  }>;
}

describe("the GPU check bundle (fake nvidia-smi at the outermost seam)", () => {
  it("carries what it runs and reports, per device, the backend it really got and why, its nvidia-smi readings and its speeds", () => {
    const dir = join(tempDir("kiln-gpu-check-"), "bundle");
    execFileSync(
      process.execPath,
      ["--import", "tsx", join(ROOT, "build/gpu-check/make-bundle.ts"), dir, "--no-vulkan"],
      {
        cwd: ROOT,
        stdio: "pipe",
      },
    );
    expect(existsSync(join(dir, "node", "bin", "node"))).toBe(true);
    expect(existsSync(join(dir, "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", "x64"))).toBe(true);
    expect(existsSync(join(dir, "node_modules", "onnxruntime-node", "bin", "napi-v6", "win32"))).toBe(false);

    const out = execFileSync(join(dir, "run.sh"), [], {
      cwd: tempDir("kiln-gpu-check-cwd-"),
      env: {
        PATH: `${FAKE_BIN}:/usr/bin:/bin`,
        HOME: tempDir("kiln-gpu-check-home-"),
        KILN_FAKE_NVIDIA_SMI: RTX_3090,
        KILN_GPU_CHECK_DEMO_IMAGES: "4",
        KILN_GPU_CHECK_SD_IMAGES: "2",
      },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 240_000,
    });
    const report = JSON.parse(out.trim().split("\n").at(-1) as string) as CheckReport;
    expect(report.nvidiaSmi).toEqual({ ok: true });
    const gpu = report.devices.find((d) => d.kind === "nvidia");
    expect(gpu, JSON.stringify(report)).toMatchObject({
      name: "NVIDIA GeForce RTX 3090",
      nvidiaSmi: { vramTotalMb: 24576, temperatureC: 34 },
      backend: "cpu",
      errors: [],
    });
    // Why not the GPU: the providers' own reasons, not a guess.
    expect(gpu?.providerNotes.join(" ")).toMatch(/webgpu|cuda/i);
    expect(gpu?.kilnDemoImagesPerS512).toBeGreaterThan(0);
    expect(gpu?.tinySdMsPerImage).toBeGreaterThan(0);
  }, 300_000);
});
