/**
 * Start-time fair queuing (Goyal et al., 1996) over the apps that share a
 * device. Each task gets a start tag S = max(V, F_app) and a finish tag
 * F = S + cost / weight, where F_app is the app's previous finish tag and V
 * the start tag of the task last taken. The task with the smallest start tag
 * goes next, ties in arrival order; an app's own tasks stay in the order it
 * sent them, so its priorities hold.
 *
 * An app that was idle starts at V, not at its old finish tag: it gets no
 * credit for the time it did not ask for, and a newcomer waits behind at most
 * the one task whose start tag equals V. Over any busy period each app's
 * service is proportional to its weight, within one task's cost.
 */
export interface FairQueued<T> {
  client: string;
  item: T;
  cost: number;
  start: number;
  finish: number;
  arrival: number;
}

export class FairQueue<T> {
  private readonly items: FairQueued<T>[] = [];
  private readonly lastFinish = new Map<string, number>();
  private virtualTime = 0;
  private arrivals = 0;

  constructor(private readonly weightOf: (client: string) => number) {}

  get length(): number {
    return this.items.length;
  }

  push(client: string, item: T, cost: number): void {
    if (!(cost > 0)) throw new RangeError(`a task's cost must be positive, got ${cost}`);
    const start = Math.max(this.virtualTime, this.lastFinish.get(client) ?? 0);
    const finish = start + cost / Math.max(this.weightOf(client), Number.EPSILON);
    this.lastFinish.set(client, finish);
    this.items.push({ client, item, cost, start, finish, arrival: this.arrivals++ });
  }

  /** The next task to serve, removed from the queue. */
  shift(): FairQueued<T> | undefined {
    let best = -1;
    for (let i = 0; i < this.items.length; i++) {
      const candidate = this.items[i] as FairQueued<T>;
      const current = this.items[best];
      if (!current || candidate.start < current.start) best = i;
    }
    if (best < 0) return undefined;
    const [next] = this.items.splice(best, 1) as [FairQueued<T>];
    this.virtualTime = next.start;
    return next;
  }

  /** Removes the first task matching; it no longer counts against its app's tag. */
  remove(match: (item: T) => boolean): T | undefined {
    const index = this.items.findIndex((q) => match(q.item));
    if (index < 0) return undefined;
    const [removed] = this.items.splice(index, 1) as [FairQueued<T>];
    this.refund(removed);
    return removed.item;
  }

  /** Empties the queue, oldest first. */
  drain(): T[] {
    const all = this.items.splice(0).sort((a, b) => a.arrival - b.arrival);
    for (const q of all) this.refund(q);
    return all.map((q) => q.item);
  }

  count(client: string): number {
    let n = 0;
    for (const q of this.items) if (q.client === client) n++;
    return n;
  }

  /** Tasks waiting per app. */
  waiting(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const q of this.items) counts.set(q.client, (counts.get(q.client) ?? 0) + 1);
    return counts;
  }

  /** A cancelled task's cost is given back to its app, so cancelling does not cost it its turn. */
  private refund(removed: FairQueued<T>): void {
    const share = removed.finish - removed.start;
    for (const q of this.items) {
      if (q.client === removed.client && q.arrival > removed.arrival) {
        q.start -= share;
        q.finish -= share;
      }
    }
    const last = this.lastFinish.get(removed.client);
    if (last !== undefined) this.lastFinish.set(removed.client, last - share);
  }
}
