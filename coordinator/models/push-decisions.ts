/**
 * Which on-demand model pushes to start (issue 16, item 2), as a pure
 * decision: the models queued images need, what each node lists, the library,
 * and the pushes in flight or remembered as failed. The room that runs pushes
 * (model-pushes.ts) does the I/O.
 */

/** A node's model entry as the decision needs it (GET /v1/node `models`). */
export interface PlanModel {
  name: string;
  hash: string;
  available: boolean;
}

export interface PlanNode {
  id: string;
  /** Online, paired, remote (not the embedded node, not farm mode): a node a push can go to. */
  eligible: boolean;
  models: readonly PlanModel[];
}

/** A failed push of a pack to a node: not retried while the library's pack has this hash (and, when retriable, until `retryAt`). */
export interface PushFailure {
  hash: string;
  /** Null: final (the node refused); otherwise when the link failure may be tried again. */
  retryAt: number | null;
}

export interface PlanInput {
  /** Models of queued images. */
  wanted: Iterable<string>;
  /** The library's usable packs: name to content hash. */
  library: ReadonlyMap<string, string>;
  nodes: readonly PlanNode[];
  /** Nodes with a push in flight (one at a time per node). */
  busyNodes: ReadonlySet<string>;
  /** Failures per `failureKey(node, model)`. */
  failures: ReadonlyMap<string, PushFailure>;
  /** Pushes that may run at once over the whole farm. */
  maxConcurrent: number;
  now: number;
}

export interface PlannedPush {
  nodeId: string;
  model: string;
  hash: string;
}

export function failureKey(nodeId: string, model: string): string {
  return `${nodeId}\n${model}`;
}

/** What a node needs of a library pack: nothing, a push, or nothing it can use (a folder of that hash it cannot run). */
export function needsPush(models: readonly PlanModel[], name: string, hash: string): boolean {
  const there = models.filter((m) => m.name === name);
  return !there.some((m) => m.hash === hash);
}

export function planPushes(input: PlanInput): PlannedPush[] {
  const planned: PlannedPush[] = [];
  let room = input.maxConcurrent - input.busyNodes.size;
  if (room <= 0) return planned;
  const taken = new Set(input.busyNodes);
  const wanted = [...new Set(input.wanted)].sort();
  for (const model of wanted) {
    const hash = input.library.get(model);
    if (hash === undefined || hash === "") continue;
    for (const node of input.nodes) {
      if (room <= 0) return planned;
      if (!node.eligible || taken.has(node.id)) continue;
      if (!needsPush(node.models, model, hash)) continue;
      const failed = input.failures.get(failureKey(node.id, model));
      if (failed && failed.hash === hash && (failed.retryAt === null || input.now < failed.retryAt)) continue;
      planned.push({ nodeId: node.id, model, hash });
      taken.add(node.id);
      room--;
    }
  }
  return planned;
}

/**
 * Library models a node lists, available, with other bytes than the library's:
 * images of them there would render with other weights, so it gets no work
 * for them while a library is in use.
 */
export function differentModels(models: readonly PlanModel[], library: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const m of models) {
    const hash = library.get(m.name);
    if (m.available && hash !== undefined && hash !== "" && m.hash !== hash) out.push(m.name);
  }
  return out;
}
