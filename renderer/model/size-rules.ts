import { MAX_IMAGE_EDGE } from "../../shared/constants";

/** The sizes artists pick most; anything else is typed as width × height. */
export const SIZE_PRESETS = [
  { label: "512×512", width: 512, height: 512 },
  { label: "768×512", width: 768, height: 512 },
  { label: "512×768", width: 512, height: 768 },
  { label: "1024×1024", width: 1024, height: 1024 },
] as const;

const MIN_EDGE = 64;
const STEP = 8;

export interface EdgeLimit {
  max: number;
  /** The model's smallest edge, when above the farm's 64. */
  min?: number;
  /** The model that sets a lower limit than the farm's, named in the message. */
  model?: string;
}

/** The nearest edge the farm accepts: a multiple of 8 within the limits. */
export function nearestEdge(value: number, max: number, min = MIN_EDGE): number {
  const rounded = Math.round(value / STEP) * STEP;
  return Math.min(Math.floor(max / STEP) * STEP, Math.max(Math.ceil(min / STEP) * STEP, rounded));
}

/**
 * Checks one edge as typed and says how to fix it, with a value to try, the
 * same rules as the job schema (shared/task.ts): a whole number, a multiple of
 * 8, 64 to 2048 pixels, and the model's own limits when narrower.
 */
export function edgeError(
  label: "Width" | "Height",
  raw: string,
  limit: EdgeLimit = { max: MAX_IMAGE_EDGE },
): string | null {
  const text = raw.trim();
  const max = Math.min(limit.max, MAX_IMAGE_EDGE);
  const min = Math.max(limit.min ?? MIN_EDGE, MIN_EDGE);
  if (text === "") return `${label} is needed (try 512)`;
  const value = Number(text);
  if (!Number.isFinite(value)) return `${label} must be a number of pixels (try 512)`;
  const fix = nearestEdge(value, max, min);
  if (!Number.isInteger(value)) return `${label} must be a whole number of pixels (try ${fix})`;
  if (value < min) {
    const whose = limit.model && min > MIN_EDGE ? ` for ${limit.model}` : "";
    return `${label} must be at least ${min} pixels${whose} (try ${fix})`;
  }
  if (value > max) {
    const whose = limit.model && max < MAX_IMAGE_EDGE ? ` for ${limit.model}` : "";
    return `${label} must be at most ${max} pixels${whose} (try ${fix})`;
  }
  if (value % STEP !== 0) return `${label} must be a multiple of 8 (try ${fix})`;
  return null;
}
