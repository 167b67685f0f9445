import type { ModelInfo } from "../../shared/node-info";
import type { NodeSummary } from "../../shared/ui-api";

/** Models the farm can run now: the union of paired nodes' available models, by name, sorted. */
export function farmModels(nodes: NodeSummary[]): ModelInfo[] {
  const byName = new Map<string, ModelInfo>();
  for (const node of nodes) {
    if (node.status === "unpaired" || node.status === "conflict") continue;
    for (const model of node.models) if (model.available && !byName.has(model.name)) byName.set(model.name, model);
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}
