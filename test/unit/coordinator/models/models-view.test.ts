import { describe, expect, it } from "vitest";
import { formatModelsReport, formatSize } from "../../../../coordinator/cli/models-view";
import type { ModelsReport } from "../../../../coordinator/models/models-report";

const node = (id: string, host: string) => ({ id, name: "gpu-box", host, port: 7878, reachable: true, problem: null });

describe("kiln models table", () => {
  it("shows push statuses in their cell, reasons under the row, and tells same-named nodes apart", () => {
    const report: ModelsReport = {
      library: { dir: "/studio/models" },
      nodes: [node("a", "10.0.0.7"), node("b", "10.0.0.8")],
      packs: [
        {
          folder: "sdxl",
          name: "sdxl-turbo",
          kind: "sdxl",
          hash: "a".repeat(64),
          sizeBytes: 6_940_000_000,
          files: 12,
          status: { state: "ok" },
          onNodes: [
            { nodeId: "a", status: { state: "pushing", percent: 37.2, bytesPerSecond: 0 } },
            { nodeId: "b", status: { state: "refused", reason: "needs 6.94 GB, 2.10 GB free" } },
          ],
        },
      ],
      nodesOnly: [],
    };
    const text = formatModelsReport(report);
    expect(text).toContain("library /studio/models: 1 pack\n");
    expect(text).toMatch(/STATUS\s+gpu-box@10\.0\.0\.7:7878\s+gpu-box@10\.0\.0\.8:7878\n/);
    expect(text).toMatch(/sdxl-turbo\s+sdxl\s+aaaaaaaaaaaa\s+6\.94 GB\s+ok\s+pushing 37%\s+refused\n/);
    expect(text).toContain("  ↳ folder sdxl/\n");
    expect(text).toContain("  ↳ gpu-box@10.0.0.8:7878 refused: needs 6.94 GB, 2.10 GB free\n");
    expect(text).not.toContain("on nodes only");
  });

  it("sizes in GB, MB, kB", () => {
    expect(formatSize(2_000_000_000)).toBe("2.00 GB");
    expect(formatSize(3_240_000)).toBe("3.2 MB");
    expect(formatSize(83_000)).toBe("83 kB");
    expect(formatSize(0)).toBe("0 kB");
  });
});
