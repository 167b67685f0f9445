import type { WorkerInit } from "../../shared/worker-messages";

/** What a node's DeviceRunner sends a worker for one simulated device rendering `rate` images a second. */
export function simulatedWorkerInit(nodeId: string, uuid: string, imageDir: string, rate: number): WorkerInit {
  return {
    type: "init",
    nodeId,
    device: { uuid, name: "Simulated GPU", kind: "simulated", simulatedRate: rate, vramTotalMb: 24_576 },
    imageDir,
    modelsDir: null,
    providers: ["cpu"],
    packs: [],
    upscalers: [],
    modelIdleUnloadS: 0,
  };
}
