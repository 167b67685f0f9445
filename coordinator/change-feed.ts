/**
 * What changed since the UI last heard: the parts mark the queue or the nodes
 * as changed as often as they like, and the coordinator's tick sends at most
 * one `queue.changed` and one `nodes.changed` event per tick.
 */
export class ChangeFeed {
  private queue = false;
  private nodes = false;

  queueChanged(): void {
    this.queue = true;
  }

  nodesChanged(): void {
    this.nodes = true;
  }

  /** What changed since the last call; cleared by reading. */
  take(): { queue: boolean; nodes: boolean } {
    const changed = { queue: this.queue, nodes: this.nodes };
    this.queue = false;
    this.nodes = false;
    return changed;
  }
}
