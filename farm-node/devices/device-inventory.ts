import type { DeviceKind } from "../../shared/device";
import type { CpuDescription } from "./cpu-readings";
import type { DeviceSelection } from "./device-selection";
import type { NvidiaGpuReading } from "./nvidia-smi";
import type { SimulateSpec } from "./simulate-spec";

/** One device the node will run a worker on. */
export interface InventoryDevice {
  /** Identity everywhere (protocol, scheduler, telemetry); indices can change across reboots. */
  uuid: string;
  /**
   * NVIDIA GPUs keep nvidia-smi's index; the CPU and simulated devices are numbered after
   * the machine's last NVIDIA GPU, so indices on one node never collide.
   */
  index: number;
  name: string;
  kind: DeviceKind;
  simulated: boolean;
  vramTotalMb: number | null;
  simulatedRate?: number;
  /**
   * For `CUDA_VISIBLE_DEVICES`. This is nvidia-smi's PCI-bus-order index, so the worker must
   * also set `CUDA_DEVICE_ORDER=PCI_BUS_ID` (CUDA's default order is fastest first).
   */
  cudaIndex?: number;
}

export interface InventoryInput {
  /** The node's stable id: derived uuids stay the same across restarts. */
  nodeId: string;
  selection: DeviceSelection;
  simulate: SimulateSpec[];
  /** The GPUs nvidia-smi listed; empty when it is absent or failed. */
  gpus: NvidiaGpuReading[];
  cpu: CpuDescription;
}

function formatMemory(mb: number): string {
  return mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

function nvidiaDevice(gpu: NvidiaGpuReading): InventoryDevice {
  return {
    uuid: gpu.uuid,
    index: gpu.index,
    name: gpu.name,
    kind: "nvidia",
    simulated: false,
    vramTotalMb: gpu.vramTotalMb,
    cudaIndex: gpu.index,
  };
}

function pickGpus(selection: DeviceSelection, gpus: NvidiaGpuReading[]): NvidiaGpuReading[] {
  if (selection.kind !== "indices") return gpus;
  return selection.indices.map((index) => {
    const gpu = gpus.find((candidate) => candidate.index === index);
    if (gpu) return gpu;
    const found =
      gpus.length === 0
        ? "nvidia-smi lists no NVIDIA GPU here"
        : `GPUs found: ${gpus.map((g) => `${g.index} (${g.name})`).join(", ")}`;
    throw new Error(
      `--devices ${selection.indices.join(",")}: there is no NVIDIA GPU ${index} on this machine; ${found}. ` +
        "Use --devices all, cpu, or indices from that list.",
    );
  });
}

/**
 * Decides which devices the node runs. `auto` means every NVIDIA GPU, or the CPU when
 * there is none; with `--simulate` it means only the simulated devices, so a simulated
 * farm node does not also load the test machine's CPU. `all` is every NVIDIA GPU (or the
 * CPU), `cpu` the CPU alone, an index list exactly those GPUs. Simulated devices are
 * added to every selection.
 */
export function buildInventory(input: InventoryInput): InventoryDevice[] {
  const { nodeId, selection, simulate, gpus, cpu } = input;
  let nextIndex = gpus.reduce((max, gpu) => Math.max(max, gpu.index + 1), 0);
  const devices: InventoryDevice[] = [];

  const simulatedOnly = selection.kind === "auto" && simulate.length > 0;
  const useCpu = selection.kind === "cpu" || (!simulatedOnly && selection.kind !== "indices" && gpus.length === 0);
  if (useCpu) {
    devices.push({
      uuid: `CPU-${nodeId}`,
      index: nextIndex++,
      name: cpu.name,
      kind: "cpu",
      simulated: false,
      vramTotalMb: cpu.memoryMb,
    });
  } else if (!simulatedOnly) {
    devices.push(...pickGpus(selection, gpus).map(nvidiaDevice));
  }

  let simulatedNumber = 0;
  for (const spec of simulate) {
    for (let i = 0; i < spec.count; i++) {
      devices.push({
        uuid: `SIM-${nodeId}-${simulatedNumber++}`,
        index: nextIndex++,
        name: `Simulated GPU ${formatMemory(spec.vramMb)} @${spec.rate} img/s`,
        kind: "simulated",
        simulated: true,
        vramTotalMb: spec.vramMb,
        simulatedRate: spec.rate,
      });
    }
  }
  return devices;
}
