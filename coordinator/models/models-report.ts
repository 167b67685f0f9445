import { z } from "zod";
import { DEMO_MODEL } from "../../shared/constants";
import type { ModelInfo } from "../../shared/node-info";
import { NodeModelStatus } from "../../shared/ui-api";

/**
 * What `kiln models` reports: the studio's library packs and, for every
 * paired node, whether it has each one. Plain data and pure functions; the
 * scanner and the CLI do the I/O. The schema is the shape of `kiln models
 * --json`, for scripts (it crosses no process boundary of ours).
 */

/** A library folder: a pack the studio can offer, or why not. */
export const PackStatus = z.discriminatedUnion("state", [
  z.object({ state: z.literal("ok") }),
  z.object({ state: z.literal("unreadable"), reason: z.string() }),
]);
export type PackStatus = z.infer<typeof PackStatus>;

export const LibraryPack = z.object({
  /** The pack's folder inside the library. */
  folder: z.string(),
  /** The manifest's "name", else the folder's: what jobs ask for and what nodes list. */
  name: z.string(),
  /** sd, sdxl, flow; "unknown" when the folder says nothing readable. */
  kind: z.string(),
  /** The content hash nodes compute for the same bytes; "" when unreadable (never hashed). */
  hash: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  status: PackStatus,
});
export type LibraryPack = z.infer<typeof LibraryPack>;

/**
 * A library pack on one node: the schema is the UI API's (shared/ui-api.ts),
 * one source for `kiln models --json` and the farm panel. The comparison here
 * makes the first five states; model-pushes.ts overlays a push's.
 */
export { NodeModelStatus };

export const ReportNode = z.object({
  id: z.string(),
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  reachable: z.boolean(),
  /** Why it is unreachable (or what else is wrong), in words. */
  problem: z.string().nullable(),
});
export type ReportNode = z.infer<typeof ReportNode>;

export const ModelsReport = z.object({
  library: z.object({ dir: z.string() }),
  nodes: z.array(ReportNode),
  packs: z.array(
    LibraryPack.extend({
      /** One entry per node of `nodes`, same order; empty for an unreadable pack (nothing to compare). */
      onNodes: z.array(z.object({ nodeId: z.string(), status: NodeModelStatus })),
    }),
  ),
  /** Packs some node has that the library lacks by name (the built-in demo model left out). */
  nodesOnly: z.array(
    z.object({
      name: z.string(),
      kind: z.string(),
      hash: z.string(),
      sizeBytes: z.number().int().nonnegative(),
      nodeIds: z.array(z.string()),
    }),
  ),
});
export type ModelsReport = z.infer<typeof ModelsReport>;

/** What the comparison needs of a node's model list (GET /v1/node `models`). */
export type NodeModel = Pick<
  ModelInfo,
  "name" | "kind" | "hash" | "sizeBytes" | "demo" | "available" | "unavailableReason"
>;

/** A paired node as the comparison sees it: its models when it answered. */
export interface NodeModels extends ReportNode {
  models: readonly NodeModel[];
}

/** How one library pack stands on one node. */
export function packStatusOnNode(pack: LibraryPack, node: NodeModels): NodeModelStatus {
  if (!node.reachable) return { state: "unreachable", reason: node.problem ?? "did not answer" };
  const there = node.models.find((m) => m.name === pack.name);
  if (!there) return { state: "missing" };
  if (!there.available) return { state: "unavailable", reason: there.unavailableReason ?? "the node cannot run it" };
  return there.hash === pack.hash ? { state: "present" } : { state: "different", nodeHash: there.hash };
}

/** The library against every node: a status per pack and node, and what only nodes have. */
export function compareLibrary(
  libraryDir: string,
  packs: readonly LibraryPack[],
  nodes: readonly NodeModels[],
): ModelsReport {
  const libraryNames = new Set(packs.map((p) => p.name));
  const nodesOnly = new Map<string, ModelsReport["nodesOnly"][number]>();
  for (const node of nodes) {
    if (!node.reachable) continue;
    for (const m of node.models) {
      if (m.demo || m.name === DEMO_MODEL || !m.available || libraryNames.has(m.name)) continue;
      const key = `${m.name}\n${m.hash}`;
      const entry = nodesOnly.get(key) ?? {
        name: m.name,
        kind: m.kind,
        hash: m.hash,
        sizeBytes: m.sizeBytes,
        nodeIds: [],
      };
      entry.nodeIds.push(node.id);
      nodesOnly.set(key, entry);
    }
  }
  return {
    library: { dir: libraryDir },
    nodes: nodes.map(({ models: _models, ...node }) => node),
    packs: packs.map((pack) => ({
      ...pack,
      onNodes:
        pack.status.state === "ok"
          ? nodes.map((node) => ({ nodeId: node.id, status: packStatusOnNode(pack, node) }))
          : [],
    })),
    nodesOnly: [...nodesOnly.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

/** A status in a few words: the table's cell; the reason, where there is one, goes under the row. */
export function statusWord(status: NodeModelStatus): string {
  switch (status.state) {
    case "pushing":
      return `pushing ${Math.floor(status.percent)}%`;
    default:
      return status.state;
  }
}

/** The words under a row for a status that has more to say, or null. */
export function statusDetail(status: NodeModelStatus): string | null {
  switch (status.state) {
    case "different":
      return `has other bytes under this name (content hash ${shortHash(status.nodeHash)})`;
    case "unavailable":
      return `has it but cannot run it: ${status.reason}`;
    case "refused":
      return `refused: ${status.reason}`;
    case "failed":
      return `push failed: ${status.reason}`;
    default:
      return null;
  }
}

/** The first 12 hex digits: enough to tell packs apart on a terminal. */
export function shortHash(hash: string): string {
  return hash ? hash.slice(0, 12) : "-";
}
