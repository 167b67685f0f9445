import { describe, expect, it } from "vitest";
import { buildInventory, type InventoryInput } from "../../../../farm-node/devices/device-inventory";
import { parseDeviceSelection } from "../../../../farm-node/devices/device-selection";
import { parseNvidiaSmiCsv } from "../../../../farm-node/devices/nvidia-smi";
import { parseSimulateSpec } from "../../../../farm-node/devices/simulate-spec";
import { readFixture } from "./fake-nvidia-smi";

const NODE_ID = "4f7c2a9e-1b3d-4c5e-8f6a-0b1c2d3e4f5a";
const TWO_GPUS = parseNvidiaSmiCsv(readFixture("two-rtx-3090.csv"));
const EIGHT_GPUS = parseNvidiaSmiCsv(readFixture("eight-h100.csv"));

function inventory(devices: string, options: { simulate?: string; gpus?: InventoryInput["gpus"] } = {}) {
  return buildInventory({
    nodeId: NODE_ID,
    selection: parseDeviceSelection(devices),
    simulate: options.simulate ? parseSimulateSpec(options.simulate) : [],
    gpus: options.gpus ?? [],
    cpu: { name: "AMD Ryzen 9 7950X 16-Core Processor", memoryMb: 63920 },
  });
}

describe("buildInventory", () => {
  it("auto uses every NVIDIA GPU, identified by uuid, with its CUDA index", () => {
    expect(inventory("auto", { gpus: TWO_GPUS })).toEqual([
      {
        uuid: "GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be",
        index: 0,
        name: "NVIDIA GeForce RTX 3090",
        kind: "nvidia",
        simulated: false,
        vramTotalMb: 24576,
        cudaIndex: 0,
      },
      {
        uuid: "GPU-5a28be2c-023e-b5ed-365d-ce784bc01728",
        index: 1,
        name: "NVIDIA GeForce RTX 3090",
        kind: "nvidia",
        simulated: false,
        vramTotalMb: 24576,
        cudaIndex: 1,
      },
    ]);
  });

  it("auto falls back to one CPU device, its uuid derived from the node id and its RAM as memory", () => {
    expect(inventory("auto")).toEqual([
      {
        uuid: `CPU-${NODE_ID}`,
        index: 0,
        name: "AMD Ryzen 9 7950X 16-Core Processor",
        kind: "cpu",
        simulated: false,
        vramTotalMb: 63920,
      },
    ]);
  });

  it("auto with --simulate runs only the simulated devices, not the GPUs or the CPU", () => {
    const devices = inventory("auto", { simulate: "2x24GB@4", gpus: TWO_GPUS });
    expect(devices.map((device) => device.kind)).toEqual(["simulated", "simulated"]);
    expect(inventory("auto", { simulate: "1x8GB@1" }).map((device) => device.kind)).toEqual(["simulated"]);
  });

  it("names simulated devices as such, with stable uuids in spec order", () => {
    const devices = inventory("auto", { simulate: "2x24GB@4,1x512MB@0.5" });
    expect(devices).toEqual([
      {
        uuid: `SIM-${NODE_ID}-0`,
        index: 0,
        name: "Simulated GPU 24 GB @4 img/s",
        kind: "simulated",
        simulated: true,
        vramTotalMb: 24576,
        simulatedRate: 4,
      },
      {
        uuid: `SIM-${NODE_ID}-1`,
        index: 1,
        name: "Simulated GPU 24 GB @4 img/s",
        kind: "simulated",
        simulated: true,
        vramTotalMb: 24576,
        simulatedRate: 4,
      },
      {
        uuid: `SIM-${NODE_ID}-2`,
        index: 2,
        name: "Simulated GPU 512 MB @0.5 img/s",
        kind: "simulated",
        simulated: true,
        vramTotalMb: 512,
        simulatedRate: 0.5,
      },
    ]);
    expect(inventory("auto", { simulate: "2x24GB@4,1x512MB@0.5" })).toEqual(devices);
  });

  it("all adds simulated devices after the GPUs, numbered past the last GPU index", () => {
    const devices = inventory("all", { simulate: "1x24GB@4", gpus: EIGHT_GPUS });
    expect(devices).toHaveLength(9);
    expect(devices.slice(0, 8).every((device) => device.kind === "nvidia")).toBe(true);
    expect(devices[8]).toMatchObject({ kind: "simulated", index: 8 });
  });

  it("all without NVIDIA GPUs uses the CPU", () => {
    expect(inventory("all").map((device) => device.uuid)).toEqual([`CPU-${NODE_ID}`]);
  });

  it("cpu uses the CPU even when GPUs exist, plus any simulated devices", () => {
    const devices = inventory("cpu", { simulate: "1x8GB@1", gpus: TWO_GPUS });
    expect(devices.map((device) => [device.kind, device.index])).toEqual([
      ["cpu", 2],
      ["simulated", 3],
    ]);
  });

  it("an index list picks exactly those GPUs, keeping their nvidia-smi index", () => {
    const devices = inventory("6,2", { gpus: EIGHT_GPUS });
    expect(devices.map((device) => [device.uuid, device.index, device.cudaIndex])).toEqual([
      ["GPU-7ea5979f-9f7c-4d5c-34e7-97e44fa4cd06", 6, 6],
      ["GPU-e477eae2-f65e-b163-1322-4c5a5fb62442", 2, 2],
    ]);
  });

  it("an index that does not exist names it and the GPUs that do", () => {
    expect(() => inventory("0,2", { gpus: TWO_GPUS })).toThrow(
      "--devices 0,2: there is no NVIDIA GPU 2 on this machine; GPUs found: 0 (NVIDIA GeForce RTX 3090), 1 (NVIDIA GeForce RTX 3090). Use --devices all, cpu, or indices from that list.",
    );
    expect(() => inventory("0")).toThrow(/no NVIDIA GPU 0 on this machine; nvidia-smi lists no NVIDIA GPU here/);
  });
});
