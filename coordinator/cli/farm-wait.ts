import { KilnError } from "../../shared/errors";
import type { Coordinator } from "../coordinator";

/** How long a command waits for its first node. */
const FIRST_NODE_MS = 60_000;
/**
 * How long it then waits for the rest of the nodes it knows: a job is checked
 * against, and planned over, every node it was given, not only the quickest
 * to connect (it returns as soon as they are all online).
 */
const OTHER_NODES_MS = 10_000;

/** Waits until the farm a command was given is online: at least one node, then the rest for a short while. */
export async function waitForFarm(coordinator: Coordinator): Promise<void> {
  if (!(await coordinator.waitForNodes(FIRST_NODE_MS)))
    throw new KilnError("E_NOT_READY", "no node came online within 60 s; check --node/--token or the local node");
  await coordinator.waitForAllNodes(OTHER_NODES_MS);
}
