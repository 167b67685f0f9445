import type { ImageSummary } from "../../shared/ui-api";

export interface GridLayout {
  /** One label per column (gridX), per row (gridY; a single empty label without a Y axis). */
  xLabels: string[];
  yLabels: string[];
  /** The first image of each cell, by `${x},${y}`, and how many images the cell holds. */
  cells: Map<string, { image: ImageSummary; count: number }>;
}

type Extract = (image: ImageSummary) => string;

/** Parameters a grid axis can vary, in the order they are tried, with how each labels a value. */
const PARAMETERS: Extract[] = [
  (i) => `cfg ${i.guidance}`,
  (i) => `steps ${i.steps}`,
  (i) => `${i.width}×${i.height}`,
  (i) => i.model,
  (i) => `seed ${i.seed}`,
  (i) => i.prompt,
];

function commonPrefix(texts: string[]): number {
  const first = texts[0] ?? "";
  let n = first.length;
  for (const t of texts) {
    let i = 0;
    while (i < n && t[i] === first[i]) i++;
    n = i;
  }
  return n;
}

/**
 * What differs between the prompts of a prompt axis: the words between their
 * common beginning and common end ("a cat on a mat" / "a dog on a mat" → cat, dog).
 */
function promptDifferences(prompts: string[]): string[] {
  if (prompts.length < 2) return prompts;
  const first = prompts[0] as string;
  // Back to a word boundary, so "a car" / "a cat" give "car" / "cat", not "r" / "t".
  const prefix = first.lastIndexOf(" ", commonPrefix(prompts) - 1) + 1;
  const rests = prompts.map((p) => [...p.slice(prefix)].reverse().join(""));
  const restFirst = rests[0] as string;
  const suffix = restFirst.lastIndexOf(" ", commonPrefix(rests) - 1) + 1;
  const parts = prompts.map((p) => p.slice(prefix, p.length - suffix).trim());
  return parts.some((p) => p === "") ? prompts : parts;
}

/**
 * Labels a job's axes from its images (the UI contract carries grid positions,
 * not the grid spec): an axis is the parameter that is constant within each
 * of its columns and differs between them.
 */
function axisLabels(images: ImageSummary[], position: (i: ImageSummary) => number | null): string[] {
  const groups = new Map<number, ImageSummary[]>();
  for (const image of images) {
    const at = position(image);
    if (at === null) continue;
    const list = groups.get(at) ?? [];
    list.push(image);
    groups.set(at, list);
  }
  const size = groups.size === 0 ? 0 : Math.max(...groups.keys()) + 1;
  const indexes = Array.from({ length: size }, (_, i) => i);
  for (const extract of PARAMETERS) {
    const values = indexes.map((i) => {
      const seen = new Set((groups.get(i) ?? []).map(extract));
      return seen.size === 1 ? ([...seen][0] as string) : null;
    });
    if (values.some((v) => v === null)) continue;
    if (size > 1 && new Set(values).size < 2) continue;
    return extract === PARAMETERS.at(-1) ? promptDifferences(values as string[]) : (values as string[]);
  }
  return indexes.map((i) => `#${i + 1}`);
}

export function gridLayout(images: ImageSummary[]): GridLayout {
  const hasY = images.some((i) => i.gridY !== null);
  const cells = new Map<string, { image: ImageSummary; count: number }>();
  for (const image of images) {
    if (image.gridX === null) continue;
    const key = `${image.gridX},${image.gridY ?? 0}`;
    const cell = cells.get(key);
    if (!cell) cells.set(key, { image, count: 1 });
    else {
      cell.count += 1;
      // A finished image stands for the cell as soon as there is one.
      if (cell.image.state !== "done" && image.state === "done") cell.image = image;
    }
  }
  return {
    xLabels: axisLabels(images, (i) => i.gridX),
    yLabels: hasY ? axisLabels(images, (i) => i.gridY) : [""],
    cells,
  };
}
