import type { WorkerInit, WorkerModelEvent } from "../../shared/worker-messages";
import { demoModelInfo } from "./demo-model-info";
import type { Engine } from "./engine";
import { EngineSet } from "./engine-set";
import { createSimulatedEngine } from "./simulated-engine";

/**
 * The engine a worker runs: simulated devices sleep; every other device runs
 * the built-in demo model and the node's model packs on ONNX Runtime.
 */
export async function loadEngine(
  init: WorkerInit,
  onModelEvent: (event: Omit<WorkerModelEvent, "type">) => void,
): Promise<Engine> {
  const { device } = init;
  if (device.kind === "simulated") {
    if (device.simulatedRate === undefined) throw new Error(`simulated device ${device.uuid} has no rate`);
    return createSimulatedEngine({
      rate: device.simulatedRate,
      vramTotalMb: device.vramTotalMb,
      // A simulated GPU simulates hires fix too, which the real demo network cannot run.
      models: [{ ...demoModelInfo(), hires: true }],
    });
  }
  // ONNX Runtime and the pack pipelines are loaded only by a worker that runs them, never by a simulated one.
  const [{ createDemoEngine }, { PackEngine }, { UpscalerEngine }] = await Promise.all([
    import("./demo-engine"),
    import("./pack-engine"),
    import("./upscaler-engine"),
  ]);
  const demo = await createDemoEngine({ providers: init.providers });
  const engines: [Engine, ...Engine[]] = [demo];
  const upscalers =
    init.upscalers.length > 0
      ? new UpscalerEngine({
          upscalers: init.upscalers,
          providers: init.providers,
          memoryMb: device.vramTotalMb,
          onModelEvent,
        })
      : null;
  if (init.packs.length > 0) {
    engines.push(
      new PackEngine({
        packs: init.packs,
        providers: init.providers,
        idleUnloadMs: init.modelIdleUnloadS * 1000,
        onModelEvent,
        // Hires fix with an upscaler pack runs it on this worker, its session shared with upscale jobs.
        findUpscaler: async (name) => (await upscalers?.pictureUpscaler(name)) ?? null,
      }),
    );
  }
  if (upscalers) engines.push(upscalers);
  return engines.length === 1 ? demo : new EngineSet(engines);
}
