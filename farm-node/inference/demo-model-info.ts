import { createHash } from "node:crypto";
import { DEMO_MODEL } from "../../shared/constants";
import type { ModelInfo } from "../../shared/node-info";
import { buildDemoGraphs, DEMO_LATENT_FACTOR, type DemoGraphs } from "./demo-model";

/*
 * What the built-in `kiln-demo` model is, apart from running it: its limits, its graphs and the hash they give.
 * Without ONNX Runtime, so a simulated device's worker can advertise the model without loading the runtime.
 */

export const DEMO_DEFAULT_STEPS = 4;
export const DEMO_MAX_STEPS = 50;
export const DEMO_DEFAULT_EDGE = 512;
export const DEMO_MIN_EDGE = 64;
export const DEMO_MAX_EDGE = 2048;

/** What `kiln-demo` is, for nodes and simulated devices that advertise it without loading it. */
export function demoModelInfo(): ModelInfo {
  return { ...demoModel().info };
}

let built: { graphs: DemoGraphs; info: ModelInfo } | undefined;

/** The graphs are built once per process: their bytes define the model hash. */
export function demoModel(): { graphs: DemoGraphs; info: ModelInfo } {
  if (built) return built;
  const graphs = buildDemoGraphs();
  const hash = createHash("sha256").update(graphs.denoiser).update(graphs.decoder).digest("hex");
  built = { graphs, info: describeDemoModel(hash) };
  return built;
}

function describeDemoModel(hash: string): ModelInfo {
  return {
    name: DEMO_MODEL,
    kind: "demo",
    hash,
    demo: true,
    description:
      "Built-in demo, no download: a small untrained network built in code that paints abstract pictures " +
      "(the prompt picks palette and mood, the seed the shapes) with real ONNX Runtime inference and " +
      "diffusion-like steps. Not a diffusion model: it does not draw what the prompt says.",
    defaultSteps: DEMO_DEFAULT_STEPS,
    defaultWidth: DEMO_DEFAULT_EDGE,
    defaultHeight: DEMO_DEFAULT_EDGE,
    defaultGuidance: 1,
    // Each step is an Euler step of a flow-matching ODE, like FlowMatch Euler samplers.
    defaultSampler: "Euler",
    maxWidth: DEMO_MAX_EDGE,
    maxHeight: DEMO_MAX_EDGE,
    maxSteps: DEMO_MAX_STEPS,
    sizeMultiple: DEMO_LATENT_FACTOR,
    sizeBytes: 0,
    // It has no VAE encoder: the studio refuses an img2img job for it before queueing (the node would too).
    img2img: false,
    hires: false,
    available: true,
    unavailableReason: null,
  };
}
