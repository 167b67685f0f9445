import type { NodeSummary } from "../../shared/ui-api";

/** Device uuid → "rack-07 · GPU 1", for jobs and images that name devices by uuid. */
export function deviceNames(nodes: NodeSummary[]): Map<string, string> {
  const names = new Map<string, string>();
  for (const node of nodes) {
    for (const d of node.devices) {
      names.set(d.uuid, `${node.name} · ${d.kind === "cpu" ? "CPU" : `GPU ${d.index}`}`);
    }
  }
  return names;
}
