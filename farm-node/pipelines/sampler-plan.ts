import { KilnError } from "../../shared/errors";
import type { SchedulerSpec } from "../../shared/model-manifest";
import { SAMPLER_ALIASES } from "../../shared/pack-model-info";
import { type Guidance, runsNegative, stepGuidance } from "./guidance";
import { eulerInputScale, eulerWeights } from "./samplers/euler";
import { eulerAncestralWeights } from "./samplers/euler-ancestral";
import { flowMatchEulerWeights } from "./samplers/flow-match-euler";
import { lcmWeights } from "./samplers/lcm";
import { alphasCumprod, eulerSchedule, flowMatchSchedule, lcmTimesteps } from "./samplers/schedules";
import type { StepWeights } from "./samplers/step-weights";

/**
 * A sampler fixed for one batch: its schedule computed once, then asked per
 * step what to feed the model and how to advance the latents (see
 * step-weights.ts: every step is x ← sample·x + model·ε̂ + noise·z).
 */
export interface SamplerPlan {
  /** The name written into PNG parameters (A1111's names). */
  readonly name: string;
  readonly steps: number;
  /** Steps that draw fresh noise (one latent's worth per image each, in step order), so the draws can be prefetched. */
  readonly noiseDraws: number;
  /** Initial latents are seeded normal noise times this. */
  readonly initNoiseSigma: number;
  /** The denoiser's timestep input at step i. */
  timestep(i: number): number;
  /** Latents are multiplied by this before they go into the denoiser at step i. */
  inputScale(i: number): number;
  /** A step that cannot change the latent (flow's final σ = 0 → 0); the model run is skipped. */
  isNoop(i: number): boolean;
  /** The batch runs its negative prompt beside the prompt (on the steps where `guidance` is not null). */
  readonly guided: boolean;
  /** The k of the guided output u + k·(c − u) at step i, or null where the step takes the prompt's output alone. */
  guidance(i: number): number | null;
  /** How step i advances each latent from the model's output; `noise` ≠ 0 exactly on the steps that draw. */
  weights(i: number): StepWeights;
  /**
   * img2img: how a clean latent x₀ is noised to start at step i, x = sample·x₀ + noise·z,
   * as the scheduler's `add_noise` at that step's timestep (Euler: x₀ + σᵢ·z;
   * LCM: √ᾱ·x₀ + √(1−ᾱ)·z; flow: (1−σ)·x₀ + σ·z).
   */
  noiseAt(i: number): { sample: number; noise: number };
}

export const DISCRETE_SAMPLERS = ["Euler", "Euler a", "LCM"];
export const FLOW_SAMPLERS = ["Euler"];

/** Picks the sampler for a batch: the task's choice, or the pack's own scheduler. */
export function planSampler(
  scheduler: SchedulerSpec,
  requested: string | undefined,
  steps: number,
  guidance: Guidance,
): SamplerPlan {
  if (scheduler.kind === "flow_match_euler") {
    if (requested && !/^(flow ?match )?euler$/i.test(requested.trim())) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `sampler "${requested}" does not apply to a flow-matching model; use ${FLOW_SAMPLERS.join(", ")}`,
        { samplers: FLOW_SAMPLERS },
        [{ path: "sampler", message: `must be one of ${FLOW_SAMPLERS.join(", ")}` }],
      );
    }
    return flowPlan(scheduler, steps, guidance);
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
  const plan = kind === "lcm" ? lcmPlan(config, steps) : eulerPlan(config, steps);
  // Truncation is Z-Image's and pack checks keep its formula to flow packs: a discrete plan guides every step or none.
  const guided = runsNegative(guidance);
  return { ...plan, guided, guidance: () => (guided ? guidance.scale : null) };
}

type DiscreteSpec = Extract<SchedulerSpec, { kind: "euler" | "euler_a" | "lcm" }>;

type UnguidedPlan = Omit<SamplerPlan, "guided" | "guidance">;

function eulerPlan(config: DiscreteSpec, steps: number): UnguidedPlan {
  const { timesteps, sigmas, initNoiseSigma } = eulerSchedule(config, steps);
  const ancestral = config.kind === "euler_a";
  const sigma = (i: number) => sigmas[i] as number;
  const weights = (i: number) =>
    ancestral
      ? eulerAncestralWeights(sigma(i), sigma(i + 1), config.prediction)
      : eulerWeights(sigma(i), sigma(i + 1), config.prediction);
  return {
    name: ancestral ? "Euler a" : "Euler",
    steps,
    noiseDraws: countDraws(steps, weights),
    initNoiseSigma,
    timestep: (i) => timesteps[i] as number,
    inputScale: (i) => eulerInputScale(sigma(i)),
    isNoop: () => false,
    weights,
    noiseAt: (i) => ({ sample: 1, noise: sigma(i) }),
  };
}

function lcmPlan(config: DiscreteSpec, steps: number): UnguidedPlan {
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
  const weights = (i: number) =>
    lcmWeights({
      timestep: t(i),
      alphaCumprod: ac[t(i)] as number,
      // The last step returns the denoised estimate without re-noising.
      alphaCumprodNext: i + 1 < steps ? (ac[t(i + 1)] as number) : undefined,
    });
  return {
    name: "LCM",
    steps,
    noiseDraws: countDraws(steps, weights),
    initNoiseSigma: 1,
    timestep: t,
    inputScale: () => 1,
    isNoop: () => false,
    weights,
    noiseAt: (i) => {
      const a = ac[t(i)] as number;
      return { sample: Math.sqrt(a), noise: Math.sqrt(1 - a) };
    },
  };
}

function flowPlan(
  config: Extract<SchedulerSpec, { kind: "flow_match_euler" }>,
  steps: number,
  guidance: Guidance,
): SamplerPlan {
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
    weights: (i) => flowMatchEulerWeights(sigma(i), sigma(i + 1), config.negateOutput),
    noiseAt: (i) => ({ sample: 1 - sigma(i), noise: sigma(i) }),
    guided: runsNegative(guidance),
    guidance: (i) => stepGuidance(guidance, sigma(i)),
  };
}

function countDraws(steps: number, weights: (i: number) => StepWeights): number {
  let draws = 0;
  for (let i = 0; i < steps; i++) if (weights(i).noise !== 0) draws++;
  return draws;
}
