import { describe, expect, it } from "vitest";
import { runKiln } from "../../../bench/kiln-simulation";
import { expandJobs, Farm, SIM_MODEL, TODAYS_FARM } from "../../../bench/sim-farm";

/** Four single-GPU nodes at 1×, 3.3×, 5.7× and 8×, on the bench's farm model. */
const farm = new Farm({ ...TODAYS_FARM, nodes: 4, gpusPerNode: 1 }, 7);
const jobs = [{ id: "job", count: 600, work: { model: SIM_MODEL, width: 512, height: 512, steps: 8 } }];
const images = expandJobs(jobs);
const totalSpeed = farm.devices.reduce((s, d) => s + d.speed, 0);

// The real coordinator on a virtual clock: the same run gives the same figures on any machine.
describe("the coordinator over a simulated run", () => {
  it("gives faster devices proportionally more images and finishes close to the ideal", async () => {
    const run = await runKiln({ farm, jobs });
    for (const device of farm.devices) {
      const share = (run.imagesByDevice.get(device.key) ?? 0) / images.length;
      expect(share).toBeGreaterThan((device.speed / totalSpeed) * 0.85);
      expect(share).toBeLessThan((device.speed / totalSpeed) * 1.15);
    }
    expect(run.makespanS / farm.ideal(images)).toBeLessThan(1.1);
  });

  it("finishes every image, each once, when a node goes silent mid-run", async () => {
    const fastest = [...farm.devices].sort((a, b) => b.speed - a.speed)[0];
    const faults = { nodeIds: [fastest?.nodeId as string], atS: farm.ideal(images) / 2 };
    const run = await runKiln({ farm, jobs, faults });
    expect([...run.imagesByDevice.values()].reduce((a, b) => a + b, 0)).toBe(images.length);
    expect(run.makespanS / farm.ideal(images, faults)).toBeLessThan(1.2);
  });

  it("takes no node for lost when the app itself stalls past the lease, and loses none of the run", async () => {
    const stalls = [10_000, 20_000];
    const run = await runKiln({
      farm,
      jobs,
      // Twice, the app's loop is held 5 s (past the 3 s lease): its nodes' heartbeats wait unread meanwhile.
      atStart: (_, clock) => {
        for (const at of stalls) clock.setTimeout(() => clock.stall(5_000), at);
      },
    });
    expect(run.warnings.get("node lost; its in-flight images go back to the queue") ?? 0).toBe(0);
    expect([...run.imagesByDevice.values()].reduce((a, b) => a + b, 0)).toBe(images.length);
  });
});
