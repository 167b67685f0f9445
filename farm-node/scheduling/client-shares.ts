/**
 * How a device's busy time divided between the apps it served over the last
 * `windowMs`: the span each batch rendered, charged to the app that sent it.
 * Time is injected for tests.
 */
export class ClientShares {
  private readonly spans: Array<{ client: string; from: number; to: number }> = [];
  private running: { client: string; from: number } | null = null;

  constructor(
    readonly windowMs = 300_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** A batch of `client`'s started rendering; ends whatever ran before it. */
  begin(client: string): void {
    this.end();
    this.running = { client, from: this.now() };
  }

  /** The rendering batch finished (or the device went idle). */
  end(): void {
    if (!this.running) return;
    this.spans.push({ ...this.running, to: this.now() });
    this.running = null;
  }

  /** The app whose batch is rendering now. */
  get current(): string | null {
    return this.running?.client ?? null;
  }

  /** Each app's fraction of the busy time within the window; empty when the device did nothing. */
  shares(): Map<string, number> {
    const now = this.now();
    const since = now - this.windowMs;
    while (this.spans.length > 0 && (this.spans[0]?.to as number) <= since) this.spans.shift();
    const busy = new Map<string, number>();
    const add = (client: string, from: number, to: number) => {
      const ms = to - Math.max(from, since);
      if (ms > 0) busy.set(client, (busy.get(client) ?? 0) + ms);
    };
    for (const span of this.spans) add(span.client, span.from, span.to);
    if (this.running) add(this.running.client, this.running.from, now);
    let total = 0;
    for (const ms of busy.values()) total += ms;
    const shares = new Map<string, number>();
    for (const [client, ms] of busy) shares.set(client, total > 0 ? ms / total : 0);
    return shares;
  }
}
