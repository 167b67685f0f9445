import { KilnError } from "./errors";
import type { ModelInfo } from "./node-info";

/**
 * One value of a job or task against the limits its model advertises, the
 * same on the app (before queueing) and on the node (at its door): steps at
 * most the model's; a side at most its largest, at least its smallest and a
 * multiple of its step. `field` is what the refusal names ("width",
 * "hires.height", …).
 */
export function checkModelLimit(
  field: string,
  value: number,
  limit: "width" | "height" | "steps",
  model: Pick<ModelInfo, "name" | "maxWidth" | "maxHeight" | "maxSteps" | "minEdge" | "sizeMultiple">,
): void {
  const max = limit === "width" ? model.maxWidth : limit === "height" ? model.maxHeight : model.maxSteps;
  if (value > max) {
    throw new KilnError("E_SIZE_LIMIT", `${field} ${value} is above ${model.name}'s limit of ${max}`, { field, max }, [
      { path: field, message: `must be at most ${max} for ${model.name}` },
    ]);
  }
  if (limit === "steps") return;
  if (model.minEdge !== undefined && value < model.minEdge) {
    throw new KilnError(
      "E_SIZE_LIMIT",
      `${field} ${value} is below ${model.name}'s smallest size of ${model.minEdge}`,
      { field, min: model.minEdge },
      [{ path: field, message: `must be at least ${model.minEdge} for ${model.name}` }],
    );
  }
  if (value % model.sizeMultiple !== 0) {
    throw new KilnError(
      "E_SIZE_LIMIT",
      `${field} ${value} is not a multiple of ${model.sizeMultiple}, which ${model.name} needs`,
      { field, multiple: model.sizeMultiple },
      [{ path: field, message: `must be a multiple of ${model.sizeMultiple} for ${model.name}` }],
    );
  }
}

/** Whether a node's door (checkModelLimit on width, height and steps) takes this work for this model. */
export function withinModelLimits(
  work: { width: number; height: number; steps: number },
  model: Parameters<typeof checkModelLimit>[3],
): boolean {
  try {
    for (const limit of ["width", "height", "steps"] as const) checkModelLimit(limit, work[limit], limit, model);
    return true;
  } catch {
    return false;
  }
}
