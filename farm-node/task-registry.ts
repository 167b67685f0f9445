import type { TaskState } from "../shared/task";

/** Where a task came from: a paired LAN app over the API, or a farm app's queue on Redis. */
export type TaskSource = "lan" | "farm";

interface Entry {
  device: string;
  /** Who sent the task: its events go to that client only. */
  client: string;
  source: TaskSource;
  state: TaskState;
  imageIds: readonly string[];
}

/**
 * Every task id this node has seen, so a resubmitted id is a no-op (the
 * coordinator retries POSTs after timeouts), with who sent it and from where,
 * and the image ids its queued and running tasks claim (an image id is one
 * file on the node: two apps must never render into the same one). Bounded:
 * the oldest finished entries are forgotten first.
 */
export class TaskRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly claims = new Map<string, string>();

  constructor(private readonly capacity = 20_000) {}

  get(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  /** The client whose queued or running task renders this image id, if any. */
  imageClaim(imageId: string): string | undefined {
    return this.claims.get(imageId);
  }

  add(id: string, device: string, client: string, source: TaskSource, imageIds: readonly string[]): void {
    this.entries.set(id, { device, client, source, state: "queued", imageIds });
    for (const imageId of imageIds) this.claims.set(imageId, client);
    if (this.entries.size > this.capacity) {
      for (const [key, entry] of this.entries) {
        if (entry.state !== "queued" && entry.state !== "running") {
          this.entries.delete(key);
          break;
        }
      }
    }
  }

  /** A task that was never queued after all (its device refused it). */
  remove(id: string): void {
    const entry = this.entries.get(id);
    if (entry) this.release(entry);
    this.entries.delete(id);
  }

  setState(id: string, state: TaskState): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.state = state;
    // Ended: its delivered images are owned through the image store from now on.
    if (state !== "queued" && state !== "running") this.release(entry);
  }

  private release(entry: Entry): void {
    for (const imageId of entry.imageIds) if (this.claims.get(imageId) === entry.client) this.claims.delete(imageId);
    // Ended tasks are kept only to recognise a resubmitted id: their image ids would hold up to 175 MB of heap at capacity.
    entry.imageIds = [];
  }
}
