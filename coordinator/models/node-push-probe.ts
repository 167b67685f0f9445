import { KilnError } from "../../shared/errors";
import type { PushStatus } from "../../shared/model-push";
import type { ModelsReport } from "./models-report";
import { withPush } from "./node-library-status";
import { percentOf } from "./push-rate";

/** What the probe asks of a node: its push endpoints' status (NodeClient has it). */
export interface PushStatusLink {
  pushStatus(hash: string): Promise<PushStatus>;
}

/**
 * `kiln models` on its own sees no pushes of a running app, so it asks each
 * reachable node about every library pack the node lacks: a push staged there
 * (under way from some app, or stopped and waiting to resume) shows as
 * `pushing N%` by the bytes the node holds; a node that takes no pushes shows
 * `refused` with its words. A node that answers anything else keeps the plain
 * comparison.
 */
export async function probeNodePushes(
  report: ModelsReport,
  linkOf: (nodeId: string) => PushStatusLink | null,
): Promise<ModelsReport> {
  const packs = await Promise.all(
    report.packs.map(async (pack) => ({
      ...pack,
      onNodes: await Promise.all(
        pack.onNodes.map(async (on) => {
          if (on.status.state !== "missing" && on.status.state !== "different") return on;
          const link = linkOf(on.nodeId);
          if (!link) return on;
          const overlay = await stagedPush(link, pack.hash, pack.name);
          return overlay ? { ...on, status: withPush(on.status, overlay) } : on;
        }),
      ),
    })),
  );
  return { ...report, packs };
}

async function stagedPush(link: PushStatusLink, hash: string, model: string) {
  try {
    const status = await link.pushStatus(hash);
    if (status.installed) return null;
    const percent = percentOf(status.totalBytes - status.bytesToSend, status.totalBytes);
    return { model, state: "pushing" as const, percent, bytesPerSecond: 0, reason: null, final: false };
  } catch (error) {
    if (error instanceof KilnError && error.code === "E_FORBIDDEN")
      return { model, state: "failed" as const, percent: 0, bytesPerSecond: 0, reason: error.message, final: true };
    return null;
  }
}
