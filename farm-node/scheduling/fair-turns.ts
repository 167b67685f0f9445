/**
 * Which app a node pulls its next task from in farm mode, by the same
 * start-time fair queuing as FairQueue: there the node holds the tasks, here
 * they wait in each app's queue on Redis and only their apps are known until
 * one is taken. Apps are asked in order of their start tag max(V, F_app); the
 * one whose task is taken is charged cost / weight.
 */
export class FairTurns {
  private readonly lastFinish = new Map<string, number>();
  private virtualTime = 0;

  constructor(private readonly weightOf: (app: string) => number) {}

  /** The apps to ask for work, the one whose turn it is first (ties by name, so every node agrees). */
  order(apps: readonly string[]): string[] {
    const start = (app: string) => Math.max(this.virtualTime, this.lastFinish.get(app) ?? 0);
    return [...apps].sort((a, b) => start(a) - start(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  /** A task of `cost` was taken from `app`. */
  charge(app: string, cost: number): void {
    const start = Math.max(this.virtualTime, this.lastFinish.get(app) ?? 0);
    this.lastFinish.set(app, start + cost / Math.max(this.weightOf(app), Number.EPSILON));
    this.virtualTime = start;
  }
}
