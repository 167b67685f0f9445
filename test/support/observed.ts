/**
 * Things a test watches arrive (log lines, events, mDNS answers), with a way to
 * wait for the first one that matches. Items seen before the wait count too.
 */
export class Observed<T> {
  readonly items: T[] = [];
  private readonly waiters: Array<{ predicate: (item: T) => boolean; resolve: (item: T) => void }> = [];

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (!waiter.predicate(item)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(item);
    }
  }

  /** Resolves with the first matching item; rejects after `timeoutMs` or when `abort` settles first. */
  waitFor(
    predicate: (item: T) => boolean,
    timeoutMs: number,
    describe: () => string,
    abort?: Promise<string>,
  ): Promise<T> {
    const found = this.items.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms; ${describe()}`)), timeoutMs);
      this.waiters.push({
        predicate,
        resolve: (item) => {
          clearTimeout(timer);
          resolve(item);
        },
      });
      void abort?.then((why) => {
        clearTimeout(timer);
        reject(new Error(why));
      });
    });
  }
}

/** Calls `onLine` for every complete line a text stream delivers. */
export function eachLine(stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void): void {
  let buffer = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onLine(line);
  });
}
