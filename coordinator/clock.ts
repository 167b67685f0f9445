/** A timer handle, whichever clock made it: only that clock reads it. */
export type TimerHandle = unknown;

/**
 * Time as the coordinator's parts see it: the wall clock in the app, a virtual
 * one in tests and in bench:scheduler, where hours of a farm run in seconds
 * and every lease, grace period and tick follows the same injected time.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};
