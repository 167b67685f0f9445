import { READING_BOUNDS } from "../../shared/device";
/** `--simulate 2x24GB@4`: two simulated GPUs with 24 GB each, rendering 4 images/s each. */
export interface SimulateSpec {
  count: number;
  vramMb: number;
  /** Images per second of the demo model at 512×512. */
  rate: number;
}

/** More than this on one node is a typo (`100x24GB@4` for `1x24GB@4`), not a farm. */
const MAX_COUNT = 64;

const SPEC = /^(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*(gb|gib|mb|mib)\s*@\s*(\d+(?:\.\d+)?)$/i;

const USAGE =
  "expected COUNTxMEMORY@RATE, e.g. 2x24GB@4 (two 24 GB GPUs at 4 images/s each); " +
  "separate several with commas: 2x24GB@4,1x8GB@1.5";

function invalid(spec: string, why: string): Error {
  return new Error(`--simulate "${spec}": ${why}; ${USAGE}`);
}

/**
 * Parses one `--simulate` value, a comma-separated list of `NxMEM@RATE`. GB means GiB,
 * as nvidia-smi's "24 GB" cards report 24576 MiB.
 */
export function parseSimulateSpec(text: string): SimulateSpec[] {
  const parts = text.split(",").map((part) => part.trim());
  if (parts.every((part) => part === "")) throw invalid(text, "no device given");
  return parts.map((part) => {
    const match = SPEC.exec(part);
    if (!match) throw invalid(part, "not understood");
    const [, countText = "", memoryText = "", unit = "", rateText = ""] = match;
    const count = Number(countText);
    const memory = Number(memoryText);
    const rate = Number(rateText);
    if (count < 1 || count > MAX_COUNT) throw invalid(part, `count must be 1 to ${MAX_COUNT}`);
    const vramMb = Math.round(unit.toLowerCase().startsWith("g") ? memory * 1024 : memory);
    if (memory <= 0) throw invalid(part, "memory must be more than 0");
    if (vramMb > READING_BOUNDS.megabytes)
      throw invalid(part, `memory must be at most ${READING_BOUNDS.megabytes / 1024} GB`);
    if (rate <= 0) throw invalid(part, "rate must be more than 0 images/s");
    if (rate > READING_BOUNDS.imagesPerSec)
      throw invalid(part, `rate must be at most ${READING_BOUNDS.imagesPerSec} images/s`);
    return { count, vramMb, rate };
  });
}
