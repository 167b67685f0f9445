import { type LibraryPack, type NodeModels, packStatusOnNode } from "./models-report";

/**
 * Which paired nodes `kiln models push NAME` sends a pack to, from the same
 * comparison `kiln models` shows. Without --all: those that lack it or have
 * other bytes under its name (the node decides what it accepts). With --all:
 * every node that answered, the node saying "installed" where it has it.
 */
export type PushTarget =
  | { node: NodeModels; action: "push" }
  | { node: NodeModels; action: "already-there" }
  | { node: NodeModels; action: "fail"; reason: string };

export function planPushTargets(pack: LibraryPack, nodes: readonly NodeModels[], all: boolean): PushTarget[] {
  return nodes.map((node) => {
    const status = packStatusOnNode(pack, node);
    if (status.state === "unreachable") return { node, action: "fail", reason: `unreachable: ${status.reason}` };
    if (status.state === "present" && !all) return { node, action: "already-there" };
    return { node, action: "push" };
  });
}
