import { describe, expect, it } from "vitest";
import { runKiln } from "../../../bench/kiln-simulation";
import { expandJobs, idealMakespan, type SimNode } from "../../../bench/sim-farm";

/** Four single-GPU nodes at 1×, 2×, 4× and 8×. */
const nodes: SimNode[] = [1, 2, 4, 8].map((speed, n) => ({
  id: `n${n}`,
  devices: [{ nodeId: `n${n}`, uuid: "gpu-0", key: `n${n}/gpu-0`, speed, batchLimit: () => 8 }],
}));
const images = expandJobs([{ id: "job", count: 600, work: { model: "sim-model", width: 512, height: 512, steps: 8 } }]);

describe("the scheduler over a simulated run", () => {
  it("gives faster devices proportionally more images and finishes close to the ideal", () => {
    const run = runKiln({ nodes, images, seed: 7 });
    for (const node of nodes) {
      const device = node.devices[0] as SimNode["devices"][0];
      const share = (run.imagesByDevice.get(device.key) ?? 0) / images.length;
      expect(share).toBeGreaterThan((device.speed / 15) * 0.85);
      expect(share).toBeLessThan((device.speed / 15) * 1.15);
    }
    expect(run.makespanS / idealMakespan(nodes, images)).toBeLessThan(1.1);
  });

  it("finishes every image when a node vanishes mid-run", () => {
    const ideal = idealMakespan(nodes, images);
    const run = runKiln({ nodes, images, seed: 7, faults: { nodeIds: ["n3"], atS: ideal / 2, leaseS: 3 } });
    expect([...run.imagesByDevice.values()].reduce((a, b) => a + b, 0)).toBe(images.length);
    // The lost node had 8/15 of the farm: the rest, at 7/15, needs about twice as long for the second half.
    expect(run.makespanS).toBeLessThan(ideal * 2.2);
  });
});
