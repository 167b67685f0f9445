import { fieldErrors } from "./errors";
import { GridAxis } from "./job";

const KINDS = ["prompt", "seed", "steps", "cfg", "size", "model"] as const;

/**
 * Parses the CLI's and UI's short grid notation: `seed=1,2,3;cfg=1,2` gives an X
 * axis over seeds and a Y axis over CFG. `prompt=cat,dog` replaces the first value
 * (`cat`) in the prompt with each value in turn; `size=512x512,768x512`.
 * Throws an Error whose message names the part and the fix.
 */
export function parseGridSpec(text: string): { x: GridAxis; y?: GridAxis } {
  const parts = text
    .split(";")
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0 || parts.length > 2) {
    throw new Error(`grid "${text}": give one or two axes like "seed=1,2,3;cfg=1,2"`);
  }
  const axes = parts.map(parseAxis);
  return axes.length === 2 ? { x: axes[0] as GridAxis, y: axes[1] as GridAxis } : { x: axes[0] as GridAxis };
}

function parseAxis(part: string): GridAxis {
  const eq = part.indexOf("=");
  const kind = part.slice(0, eq).trim().toLowerCase();
  const raw = part
    .slice(eq + 1)
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  if (eq < 0 || !KINDS.includes(kind as (typeof KINDS)[number])) {
    throw new Error(`grid axis "${part}": start with one of ${KINDS.join(", ")} and "=", e.g. "cfg=1,2,4"`);
  }
  if (raw.length === 0) throw new Error(`grid axis "${part}": list at least one value after "="`);
  const values =
    kind === "prompt" || kind === "model" ? raw : kind === "size" ? raw.map(parseSize(part)) : raw.map(Number);
  const candidate = kind === "prompt" ? { kind, search: raw[0], values } : { kind, values };
  const parsed = GridAxis.safeParse(candidate);
  if (!parsed.success) {
    const why = fieldErrors(parsed.error).map((f) => `${f.path.replace(/^values\.(\d+)$/, "value $1")}: ${f.message}`);
    throw new Error(`grid axis "${part}": ${why.join("; ")}`);
  }
  return parsed.data;
}

function parseSize(part: string) {
  return (value: string) => {
    const match = /^(\d+)x(\d+)$/i.exec(value);
    if (!match) throw new Error(`grid axis "${part}": sizes look like 512x768, not "${value}"`);
    return { width: Number(match[1]), height: Number(match[2]) };
  };
}
