import { KilnError } from "../../shared/errors";
import type { SchedulerSpec } from "../../shared/model-manifest";
import type { NormalSource } from "../../shared/seeded-noise";
import { eulerInputScale, eulerStep } from "./samplers/euler";
import { eulerAncestralStep } from "./samplers/euler-ancestral";
import { flowMatchEulerStep } from "./samplers/flow-match-euler";
import { lcmStep } from "./samplers/lcm";
import { alphasCumprod, eulerSchedule, flowMatchSchedule, lcmTimesteps } from "./samplers/schedules";

/**
 * A sampler fixed for one batch: its schedule computed once, then asked per
 * step what to feed the model and how to advance each image's latent.
 */
export interface SamplerPlan {
  /** The name written into PNG parameters (A1111's names). */
  readonly name: string;
  readonly steps: number;
  /** Steps that draw fresh noise (one latent's worth per image each), so the draws can be prefetched. */
  readonly noiseDraws: number;
  /** Initial latents are seeded normal noise times this. */
  readonly initNoiseSigma: number;
  /** The denoiser's timestep input at step i. */
  timestep(i: number): number;
  /** Latents are multiplied by this before they go into the denoiser at step i. */
  inputScale(i: number): number;
  /** A step that cannot change the latent (flow's final σ = 0 → 0); the model run is skipped. */
  isNoop(i: number): boolean;
  /**
   * Advances one image's latent in place from the model's output at step i.
   * `noise` is the image's own seeded stream (ancestral and LCM steps draw
   * from it); `scratch` is a buffer of the latent's length.
   */
  step(latent: Float32Array, modelOutput: Float32Array, i: number, noise: NormalSource, scratch: Float32Array): void;
}

/** Sampler names a pack of each scheduler family accepts, A1111 spelling first. */
const SAMPLER_ALIASES: Record<string, "euler" | "euler_a" | "lcm"> = {
  euler: "euler",
  "euler a": "euler_a",
  euler_a: "euler_a",
  "euler ancestral": "euler_a",
  lcm: "lcm",
};

export const DISCRETE_SAMPLERS = ["Euler", "Euler a", "LCM"];
export const FLOW_SAMPLERS = ["Euler"];

/** Picks the sampler for a batch: the task's choice, or the pack's own scheduler. */
export function planSampler(scheduler: SchedulerSpec, requested: string | undefined, steps: number): SamplerPlan {
  if (scheduler.kind === "flow_match_euler") {
    if (requested && !/^(flow ?match )?euler$/i.test(requested.trim())) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `sampler "${requested}" does not apply to a flow-matching model; use ${FLOW_SAMPLERS.join(", ")}`,
        { samplers: FLOW_SAMPLERS },
        [{ path: "sampler", message: `must be one of ${FLOW_SAMPLERS.join(", ")}` }],
      );
    }
    return flowPlan(scheduler, steps);
  }
  const kind = requested ? SAMPLER_ALIASES[requested.trim().toLowerCase()] : scheduler.kind;
  if (!kind) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `unknown sampler "${requested}"; use one of ${DISCRETE_SAMPLERS.join(", ")}`,
      { samplers: DISCRETE_SAMPLERS },
      [{ path: "sampler", message: `must be one of ${DISCRETE_SAMPLERS.join(", ")}` }],
    );
  }
  const config = { ...scheduler, kind };
  return kind === "lcm" ? lcmPlan(config, steps) : eulerPlan(config, steps);
}

type DiscreteSpec = Extract<SchedulerSpec, { kind: "euler" | "euler_a" | "lcm" }>;

function eulerPlan(config: DiscreteSpec, steps: number): SamplerPlan {
  const { timesteps, sigmas, initNoiseSigma } = eulerSchedule(config, steps);
  const ancestral = config.kind === "euler_a";
  const sigma = (i: number) => sigmas[i] as number;
  return {
    name: ancestral ? "Euler a" : "Euler",
    steps,
    noiseDraws: ancestral ? steps : 0,
    initNoiseSigma,
    timestep: (i) => timesteps[i] as number,
    inputScale: (i) => eulerInputScale(sigma(i)),
    isNoop: () => false,
    step(latent, out, i, noise, scratch) {
      if (ancestral) eulerAncestralStep(latent, latent, out, sigma(i), sigma(i + 1), noise, scratch, config.prediction);
      else eulerStep(latent, latent, out, sigma(i), sigma(i + 1), config.prediction);
    },
  };
}

function lcmPlan(config: DiscreteSpec, steps: number): SamplerPlan {
  if (config.prediction !== "epsilon") {
    throw new KilnError("E_BAD_REQUEST", "the LCM sampler runs epsilon-predicting models only; use Euler");
  }
  if (steps > config.originalInferenceSteps) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `LCM takes at most ${config.originalInferenceSteps} steps; got ${steps}`,
      { maxSteps: config.originalInferenceSteps },
      [{ path: "steps", message: `must be at most ${config.originalInferenceSteps} with LCM` }],
    );
  }
  const timesteps = lcmTimesteps({ ...config, originalInferenceSteps: config.originalInferenceSteps }, steps);
  const ac = alphasCumprod(config);
  const t = (i: number) => timesteps[i] as number;
  return {
    name: "LCM",
    steps,
    // The last step returns the denoised estimate without re-noising.
    noiseDraws: steps - 1,
    initNoiseSigma: 1,
    timestep: t,
    inputScale: () => 1,
    isNoop: () => false,
    step(latent, out, i, noise, scratch) {
      const next = i + 1 < steps ? (ac[t(i + 1)] as number) : undefined;
      lcmStep(
        latent,
        latent,
        out,
        { timestep: t(i), alphaCumprod: ac[t(i)] as number, alphaCumprodNext: next },
        noise,
        scratch,
      );
    },
  };
}

function flowPlan(config: Extract<SchedulerSpec, { kind: "flow_match_euler" }>, steps: number): SamplerPlan {
  const { sigmas } = flowMatchSchedule(config, steps);
  const sigma = (i: number) => sigmas[i] as number;
  return {
    name: "Euler",
    steps,
    noiseDraws: 0,
    initNoiseSigma: 1,
    timestep(i) {
      const s = sigma(i);
      if (config.timestepInput === "sigma") return s;
      if (config.timestepInput === "one_minus_sigma") return 1 - s;
      return s * config.numTrainTimesteps;
    },
    inputScale: () => 1,
    isNoop: (i) => sigma(i) === sigma(i + 1),
    step(latent, out, i) {
      // Z-Image's transformer predicts -v: stepping from σ_next back to σ is the same as negating it, without a pass over the output.
      if (config.negateOutput) flowMatchEulerStep(latent, latent, out, sigma(i + 1), sigma(i));
      else flowMatchEulerStep(latent, latent, out, sigma(i), sigma(i + 1));
    },
  };
}
