/** How often a condition is asked again: fine enough for latencies measured in seconds, light on two shared cores. */
const POLL_MS = 50;

/**
 * Waits for what real processes change in their own time (a node's state, a
 * job's counts, a window appearing): asks `probe` until it answers something
 * truthy and returns that, or fails after `timeoutMs` naming `what` it waited for.
 */
export async function waitUntil<T>(
  probe: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
