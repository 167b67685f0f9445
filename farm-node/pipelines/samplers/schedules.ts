/**
 * Timestep and sigma schedules, computed as diffusers' schedulers compute them
 * from a model's published `scheduler_config.json`, so a pack's schedule matches
 * the one the model was distilled or tuned with. Arithmetic is float64; diffusers
 * builds betas in float32, so values agree to about 1e-6 relative.
 */

/** How inference timesteps are picked among the training timesteps (diffusers' `timestep_spacing`). */
export type TimestepSpacing = "leading" | "trailing" | "linspace";

/** The noise schedule of a DDPM-trained model (SD 1.x/2.x, SD-Turbo, SDXL). */
export interface DiscreteScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: "linear" | "scaled_linear";
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
}

/** ᾱ_t for t = 0..numTrainTimesteps-1. */
export function alphasCumprod(config: DiscreteScheduleConfig): Float64Array {
  const n = config.numTrainTimesteps;
  const scaled = config.betaSchedule === "scaled_linear";
  const start = scaled ? Math.sqrt(config.betaStart) : config.betaStart;
  const end = scaled ? Math.sqrt(config.betaEnd) : config.betaEnd;
  const out = new Float64Array(n);
  let product = 1;
  for (let t = 0; t < n; t++) {
    const b = n === 1 ? start : start + ((end - start) * t) / (n - 1);
    product *= 1 - (scaled ? b * b : b);
    out[t] = product;
  }
  return out;
}

/** Inference timesteps, highest first (may be fractional with "linspace"). */
export function discreteTimesteps(config: DiscreteScheduleConfig, steps: number): Float64Array {
  assertSteps(steps);
  const n = config.numTrainTimesteps;
  const out = new Float64Array(steps);
  // numpy's arange(n, 0, -n/steps), as diffusers' trailing spacing calls it, fills n + i·δ with δ = (n − n/steps) − n
  // as floats give it, not the exact n/steps: at 48 steps its 4th value is 937.4999…, which rounds to 937, not 938.
  const trailingStep = n - n / steps - n;
  for (let i = 0; i < steps; i++) {
    switch (config.timestepSpacing) {
      case "linspace":
        out[i] = steps === 1 ? n - 1 : ((n - 1) * (steps - 1 - i)) / (steps - 1);
        break;
      case "leading":
        out[i] = (steps - 1 - i) * Math.floor(n / steps) + config.stepsOffset;
        break;
      case "trailing":
        out[i] = roundHalfEven(n + i * trailingStep) - 1;
        break;
    }
  }
  return out;
}

export interface SigmaSchedule {
  /** The model's timestep input for each step. */
  timesteps: Float64Array;
  /** σ for each step plus a final 0: step i goes from sigmas[i] to sigmas[i+1]. */
  sigmas: Float64Array;
  /** Scale of the initial noise: σ_max, or √(σ_max²+1) with "leading" spacing, as diffusers does. */
  initNoiseSigma: number;
}

/** Karras-style σ = √((1-ᾱ)/ᾱ) at each timestep, linearly interpolated (Euler, Euler ancestral). */
export function eulerSchedule(config: DiscreteScheduleConfig, steps: number): SigmaSchedule {
  const ac = alphasCumprod(config);
  const timesteps = discreteTimesteps(config, steps);
  const sigmas = new Float64Array(steps + 1);
  for (let i = 0; i < steps; i++) {
    const t = timesteps[i] as number;
    const lo = Math.min(Math.floor(t), ac.length - 1);
    const hi = Math.min(lo + 1, ac.length - 1);
    const a = sigmaAt(ac, lo);
    sigmas[i] = a + (sigmaAt(ac, hi) - a) * (t - lo);
  }
  const max = sigmas[0] as number;
  const initNoiseSigma = config.timestepSpacing === "leading" ? Math.sqrt(max * max + 1) : max;
  return { timesteps, sigmas, initNoiseSigma };
}

/** LCM's extra settings (diffusers' LCMScheduler defaults). */
export interface LcmScheduleConfig extends DiscreteScheduleConfig {
  /** The teacher schedule the consistency model was distilled on. */
  originalInferenceSteps: number;
}

/**
 * LCM picks its timesteps among the teacher's `originalInferenceSteps` evenly
 * spaced ones (k·c - 1 with c = train/original), taken from the noisiest end.
 */
export function lcmTimesteps(config: LcmScheduleConfig, steps: number): Float64Array {
  assertSteps(steps);
  const original = config.originalInferenceSteps;
  if (steps > original) throw new RangeError(`LCM takes at most ${original} steps, got ${steps}`);
  const c = Math.floor(config.numTrainTimesteps / original);
  const out = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    const fromTop = Math.floor((i * original) / steps);
    out[i] = (original - fromTop) * c - 1;
  }
  return out;
}

/** A flow-matching model's schedule settings (diffusers' FlowMatchEulerDiscreteScheduler, static shift). */
export interface FlowMatchConfig {
  numTrainTimesteps: number;
  shift: number;
  /** How N steps spread σ before the shift (see the manifest's `scheduler.sigmas`). */
  sigmas?: "z_image" | "linspace";
  /**
   * Lowest unshifted σ of the spread. Left out: the scheduler's default, its
   * shifted 1/numTrainTimesteps (the shift then applies once more, as diffusers
   * does). Z-Image's pipeline sets 0.
   */
  sigmaMin?: number;
}

export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** Manifests that name a `sigmaMin` were written for the `linspace` spread; the others get Z-Image's. */
export function flowSigmaSpread(config: FlowMatchConfig): "z_image" | "linspace" {
  return config.sigmas ?? (config.sigmaMin === undefined ? "z_image" : "linspace");
}

/**
 * Shifted σ from 1 down to the spread's lowest plus a final 0; the model's
 * timestep input is σ·numTrainTimesteps. Z-Image's spread ends at 1/N, so
 * each of the N steps runs the model (diffusers' `get_default_z_image_sigmas`).
 */
export function flowMatchSchedule(config: FlowMatchConfig, steps: number): SigmaSchedule {
  assertSteps(steps);
  const n = config.numTrainTimesteps;
  const low = flowSigmaSpread(config) === "z_image" ? 1 / steps : (config.sigmaMin ?? shiftSigma(1 / n, config.shift));
  const timesteps = new Float64Array(steps);
  const sigmas = new Float64Array(steps + 1);
  for (let i = 0; i < steps; i++) {
    const unshifted = steps === 1 ? 1 : 1 + ((low - 1) * i) / (steps - 1);
    sigmas[i] = shiftSigma(unshifted, config.shift);
    timesteps[i] = (sigmas[i] as number) * n;
  }
  return { timesteps, sigmas, initNoiseSigma: 1 };
}

function sigmaAt(alphasCumprod: Float64Array, t: number): number {
  const a = alphasCumprod[t] as number;
  return Math.sqrt((1 - a) / a);
}

/** numpy's round(): halves go to the even neighbour, which "trailing" spacing relies on. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function assertSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
}
