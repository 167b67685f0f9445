import { MAX_SEED } from "../../shared/task";

/** A uniform seed in 0..MAX_SEED (unsigned 32-bit, like the coordinator's draws). */
export function randomSeed(): number {
  const [value] = crypto.getRandomValues(new Uint32Array(1));
  return Math.min(value ?? 0, MAX_SEED);
}
