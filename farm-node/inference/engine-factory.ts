import type { WorkerInit } from "../../shared/worker-messages";
import { createDemoEngine, demoModelInfo } from "./demo-engine";
import type { Engine } from "./engine";
import { createSimulatedEngine } from "./simulated-engine";

/** The engine a worker runs: simulated devices sleep, every other device runs ONNX Runtime. */
export async function loadEngine(init: WorkerInit): Promise<Engine> {
  const { device } = init;
  if (device.kind === "simulated") {
    if (device.simulatedRate === undefined) throw new Error(`simulated device ${device.uuid} has no rate`);
    return createSimulatedEngine({
      rate: device.simulatedRate,
      vramTotalMb: device.vramTotalMb,
      models: [demoModelInfo()],
    });
  }
  return createDemoEngine({ providers: init.providers });
}
