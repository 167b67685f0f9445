import type { TaskState } from "../shared/task";

interface Entry {
  device: string;
  /** Who sent the task: its events go to that client only. */
  client: string;
  state: TaskState;
}

/**
 * Every task id this node has seen, so a resubmitted id is a no-op (the
 * coordinator retries POSTs after timeouts). Bounded: the oldest finished
 * entries are forgotten first.
 */
export class TaskRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 20_000) {}

  get(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  add(id: string, device: string, client: string): void {
    this.entries.set(id, { device, client, state: "queued" });
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
    this.entries.delete(id);
  }

  setState(id: string, state: TaskState): void {
    const entry = this.entries.get(id);
    if (entry) entry.state = state;
  }
}
