/**
 * Start-time fair queuing (Goyal et al., 1996) between the clients (studio
 * apps) that share a device. Each task gets a start tag S = max(V, F_client)
 * and a finish tag F = S + cost / weight, where F_client is the client's
 * previous finish tag and V the start tag of the task last served. The task
 * with the smallest start tag goes next.
 *
 * A client that was idle starts at V, not at its old finish tag: it gets no
 * credit for the time it did not ask for, and a newcomer waits behind at most
 * the one task whose start tag equals V. Over any busy period each client's
 * service is proportional to its weight, within one task's cost.
 *
 * FairTurns keeps the tags alone, for a farm node whose tasks wait in each
 * app's queue on Redis until one is taken; FairQueue also holds the tasks, for
 * a device's queue on a LAN node.
 */
export class FairTurns {
  private readonly lastFinish = new Map<string, number>();
  private virtualTime = 0;

  constructor(private readonly weightOf: (client: string) => number) {}

  /** The clients in the order their turns come (ties by name, so every farm node agrees). */
  order(clients: readonly string[]): string[] {
    return [...clients].sort((a, b) => this.startOf(a) - this.startOf(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Tags a task of `cost` sent by `client`; its finish tag becomes the client's. */
  tag(client: string, cost: number): { start: number; finish: number } {
    if (!(cost > 0)) throw new RangeError(`a task's cost must be positive, got ${cost}`);
    const start = this.startOf(client);
    const finish = start + cost / Math.max(this.weightOf(client), Number.EPSILON);
    this.lastFinish.set(client, finish);
    return { start, finish };
  }

  /** The task with this start tag is served now. */
  serve(start: number): void {
    this.virtualTime = start;
  }

  /** A task of `cost` was taken from `client` and is served at once. */
  charge(client: string, cost: number): void {
    this.serve(this.tag(client, cost).start);
  }

  /** A task that will not be served gives its share of the client's tags back. */
  refund(client: string, share: number): void {
    const last = this.lastFinish.get(client);
    if (last !== undefined) this.lastFinish.set(client, last - share);
  }

  private startOf(client: string): number {
    return Math.max(this.virtualTime, this.lastFinish.get(client) ?? 0);
  }
}

export interface FairQueued<T> {
  client: string;
  item: T;
  cost: number;
  start: number;
  finish: number;
  arrival: number;
}

/** Tasks waiting for a device, served by start tag, ties in arrival order: a client's own tasks keep its order. */
export class FairQueue<T> {
  private readonly items: FairQueued<T>[] = [];
  private readonly turns: FairTurns;
  private arrivals = 0;

  constructor(weightOf: (client: string) => number) {
    this.turns = new FairTurns(weightOf);
  }

  get length(): number {
    return this.items.length;
  }

  push(client: string, item: T, cost: number): void {
    const { start, finish } = this.turns.tag(client, cost);
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
    this.turns.serve(next.start);
    return next;
  }

  /** Removes the first task matching; it no longer counts against its client's tags. */
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

  /** Tasks waiting per client. */
  waiting(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const q of this.items) counts.set(q.client, (counts.get(q.client) ?? 0) + 1);
    return counts;
  }

  /** A cancelled task's cost is given back to its client, so cancelling does not cost it its turn. */
  private refund(removed: FairQueued<T>): void {
    const share = removed.finish - removed.start;
    for (const q of this.items) {
      if (q.client === removed.client && q.arrival > removed.arrival) {
        q.start -= share;
        q.finish -= share;
      }
    }
    this.turns.refund(removed.client, share);
  }
}
