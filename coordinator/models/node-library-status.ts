import type { ModelPushSummary, NodeLibraryModel, NodeModelStatus } from "../../shared/ui-api";
import { type LibraryPack, type NodeModels, packStatusOnNode } from "./models-report";

/** A node's push of one pack as the farm panel overlays it; `final`: the node refused it (not tried again). */
export interface PushOverlay extends ModelPushSummary {
  final: boolean;
}

/**
 * The farm panel's view of one node (issue 16, item 6): each usable library
 * pack compared as `kiln models` compares it, with the node's push laid over
 * it. Pure: model-pushes.ts gives the packs and pushes, the fleet the node.
 */
export function nodeLibrary(
  packs: readonly LibraryPack[],
  node: NodeModels,
  pushes: readonly PushOverlay[],
): NodeLibraryModel[] {
  const byModel = new Map(pushes.map((p) => [p.model, p]));
  return packs
    .filter((pack) => pack.status.state === "ok")
    .map((pack) => ({ model: pack.name, status: withPush(packStatusOnNode(pack, node), byModel.get(pack.name)) }));
}

/**
 * What a push changes in the comparison: one in flight shows its progress; a
 * refusal, a failure or a cancel shows until the node lists the library's
 * bytes (then it is simply present); a finished push leaves the node's own list to tell.
 */
export function withPush(status: NodeModelStatus, push: PushOverlay | undefined): NodeModelStatus {
  if (!push || status.state === "unreachable") return status;
  if (push.state === "pushing") return { state: "pushing", percent: push.percent, bytesPerSecond: push.bytesPerSecond };
  if (push.state === "done" || status.state === "present") return status;
  if (push.state === "cancelled") return { state: "cancelled" };
  const reason = push.reason ?? "the push failed";
  return push.final ? { state: "refused", reason } : { state: "failed", reason };
}
