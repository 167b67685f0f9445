/** Answered as 429 with Retry-After: more thumbnails are waiting than the queue holds. */
export class ThumbnailQueueFull extends Error {
  constructor(waiting: number) {
    super(`${waiting} thumbnails are already waiting to be made; try again in a moment`);
  }
}

export interface JobLimits {
  /** Jobs running at once. */
  running: number;
  /** Jobs a page waits for that may queue; more are refused. */
  waiting: number;
  /** Background jobs that may queue; more are refused. */
  background: number;
}

interface Waiting {
  start(): void;
}

/**
 * A bounded queue of thumbnail encodes in two lanes: what a page waits for,
 * first come first served, and background work (thumbnails of new images made
 * ahead of time), started only when no page waits. Scrolling past a thousand
 * cells must not line up a thousand encodes: a request whose client has gone
 * (its signal aborted) leaves the queue before it starts, and past a lane's
 * bound a job is refused at once rather than queued. A started encode runs to
 * its end (sharp cannot be stopped midway); it takes tens of milliseconds and
 * its result is cached for the next time the cell is shown.
 */
export class ThumbnailJobs {
  private running = 0;
  private readonly waiting: Waiting[] = [];
  private readonly background: Waiting[] = [];

  constructor(private readonly limits: JobLimits) {}

  run<T>(job: () => Promise<T>, opts: { signal?: AbortSignal; background?: boolean } = {}): Promise<T> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.running < this.limits.running) return this.start(job);
    const lane = opts.background ? this.background : this.waiting;
    if (lane.length >= (opts.background ? this.limits.background : this.limits.waiting))
      return Promise.reject(new ThumbnailQueueFull(lane.length));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        lane.splice(lane.indexOf(entry), 1);
        reject(signal?.reason);
      };
      const entry: Waiting = {
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          this.start(job).then(resolve, reject);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      lane.push(entry);
    });
  }

  private async start<T>(job: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await job();
    } finally {
      this.running--;
      (this.waiting.shift() ?? this.background.shift())?.start();
    }
  }
}
