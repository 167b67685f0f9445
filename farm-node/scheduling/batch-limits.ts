import { startingBatchLimit } from "../../shared/batch-size";

/**
 * How many images of one model and size a device may run in one batch.
 *
 * Starting point from the reference deployment guide: batch 8 at 512×512, 4
 * above; at most 80% of VRAM usable. Estimated memory per image scales with the
 * pixel count. On out-of-memory the limit for that (model, size) is halved and
 * remembered, so the next batch fits the first time.
 */
export const USABLE_VRAM_FRACTION = 0.8;

export interface MemoryProfile {
  /** Resident weights and runtime overhead, in MiB. */
  residentMb: number;
  /** Working memory of one 512×512 image, in MiB; scales with pixel count. */
  perImageMbAt512: number;
}

const BASE_PIXELS = 512 * 512;

export function perImageMb(profile: MemoryProfile, width: number, height: number): number {
  return profile.perImageMbAt512 * ((width * height) / BASE_PIXELS);
}

/** The batch that fits: the guide's starting point capped by free usable VRAM (at least 1). */
export function vramBatchLimit(
  profile: MemoryProfile,
  vramTotalMb: number | null,
  width: number,
  height: number,
): number {
  const start = startingBatchLimit(width, height);
  if (vramTotalMb === null) return start;
  const free = vramTotalMb * USABLE_VRAM_FRACTION - profile.residentMb;
  const fits = Math.floor(free / perImageMb(profile, width, height));
  return Math.max(1, Math.min(start, fits));
}

/** Remembered limits per (model, size), lowered by out-of-memory failures. */
export class BatchLimits {
  private readonly learned = new Map<string, number>();

  constructor(
    private readonly profileOf: (model: string) => MemoryProfile,
    private readonly vramTotalMb: number | null,
  ) {}

  limit(model: string, width: number, height: number): number {
    const known = this.learned.get(key(model, width, height));
    return known ?? vramBatchLimit(this.profileOf(model), this.vramTotalMb, width, height);
  }

  /** After E_OOM at `failedBatch` images: halve it and remember. Returns the new limit. */
  halve(model: string, width: number, height: number, failedBatch: number): number {
    const next = Math.max(1, Math.floor(failedBatch / 2));
    this.learned.set(key(model, width, height), Math.min(next, this.limit(model, width, height)));
    return next;
  }
}

function key(model: string, width: number, height: number): string {
  return `${model}@${width}x${height}`;
}

/**
 * Memory profile assumed for a model until it reports its own: the demo model's
 * estimate, sized like a small SD-class pipeline so simulated farms batch the way
 * real ones do.
 */
export const DEFAULT_MEMORY_PROFILE: MemoryProfile = { residentMb: 1500, perImageMbAt512: 700 };
