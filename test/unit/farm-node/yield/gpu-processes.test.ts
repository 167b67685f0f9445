import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseComputeApps, processLabel } from "../../../../farm-node/yield/gpu-processes";

const fixture = (name: string) =>
  readFileSync(new URL(`../../../fixtures/nvidia-smi/${name}`, import.meta.url), "utf8");

describe("nvidia-smi --query-compute-apps output", () => {
  it("reads each process: pid, name, memory and GPU", () => {
    expect(parseComputeApps(fixture("compute-apps-blender.csv"))).toEqual([
      { pid: 48213, name: "/usr/bin/blender", usedMb: 6144, gpuUuid: "GPU-aa5bcd6d-244d-1523-d851-f49a31654bff" },
    ]);
    expect(parseComputeApps(fixture("compute-apps-none.csv"))).toEqual([]);
  });

  it("keeps names with commas and spaces whole, and reads [N/A] memory as unknown", () => {
    const apps = parseComputeApps(fixture("compute-apps-two-gpus.csv"));
    expect(apps.map((a) => [a.pid, processLabel(a), a.usedMb])).toEqual([
      [3121, "ollama_llama_server", 4870],
      [7712, "Resolve, Studio", null],
    ]);
  });

  it("names a process by its executable, or its pid when the driver cannot", () => {
    expect(processLabel({ pid: 9, name: "[Not Found]" })).toBe("pid 9");
    expect(processLabel({ pid: 9, name: "C:\\Program Files\\Blender\\blender.exe" })).toBe("blender.exe");
  });
});
