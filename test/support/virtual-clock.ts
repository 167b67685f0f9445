import type { Clock, TimerHandle } from "../../coordinator/clock";

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  /** Repeats every this many ms; 0 for a one-shot timer. */
  every: number;
  cleared: boolean;
}

/**
 * Time that moves only when told: timers run in order of their due time (ties
 * in the order they were set), and `now()` jumps to each one's time as it
 * runs. Hours of a farm run in seconds, and every run of the same inputs sees
 * the same instants. Whoever drives it decides when real work (promises, file
 * I/O) must have settled before time moves on; see {@link runVirtual}.
 */
export class VirtualClock implements Clock {
  /** Runs every run of a repeating timer, given its period: how a bench times the coordinator's tick. */
  aroundInterval: ((everyMs: number, run: () => void) => void) | null = null;
  private time: number;
  private seq = 0;
  /** Min-heap on (at, seq). */
  private readonly heap: Timer[] = [];

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, 0);
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle) (handle as Timer).cleared = true;
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    // An interval of 0 would never let time move.
    return this.add(fn, ms, Math.max(1, Math.ceil(ms)));
  }

  clearInterval(handle: TimerHandle): void {
    this.clearTimeout(handle);
  }

  /**
   * The process stalls for `ms` (a statement waiting out another process's lock, a suspended laptop): time moves on
   * and no timer runs meanwhile; those that fell due run late, in order, once the stall is over.
   */
  stall(ms: number): void {
    this.time += ms;
  }

  /** When the next timer is due; undefined when none is set. */
  nextAt(): number | undefined {
    this.dropCleared();
    return this.heap[0]?.at;
  }

  /** Moves to the next timer's time and runs it; false when no timer is set. */
  runNext(): boolean {
    this.dropCleared();
    const timer = this.pop();
    if (!timer) return false;
    this.time = Math.max(this.time, timer.at);
    if (timer.every > 0) {
      timer.at += timer.every;
      timer.seq = this.seq++;
      this.push(timer);
    }
    if (timer.every > 0 && this.aroundInterval) this.aroundInterval(timer.every, timer.fn);
    else timer.fn();
    return true;
  }

  private add(fn: () => void, ms: number, every: number): Timer {
    // Whole milliseconds, as Date.now() gives them (the ledger stores instants as integers).
    const timer: Timer = { at: Math.ceil(this.time + Math.max(0, ms)), seq: this.seq++, fn, every, cleared: false };
    this.push(timer);
    return timer;
  }

  private dropCleared(): void {
    while (this.heap[0]?.cleared) this.pop();
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i] as Timer, heap[parent] as Timer)) break;
      [heap[i], heap[parent]] = [heap[parent] as Timer, heap[i] as Timer];
      i = parent;
    }
  }

  private pop(): Timer | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l] as Timer, heap[m] as Timer)) m = l;
      if (r < heap.length && before(heap[r] as Timer, heap[m] as Timer)) m = r;
      if (m === i) return top;
      [heap[i], heap[m]] = [heap[m] as Timer, heap[i] as Timer];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface VirtualRun {
  clock: VirtualClock;
  /** Resolves once the code under test has finished the real work (file I/O) the last timer started. */
  settle(): Promise<void>;
  /** Checked after each settled timer; the run ends when it is true. */
  done(): boolean;
  /** Virtual ms after which the run is declared stuck. */
  limitMs: number;
}

/**
 * Drives a virtual clock one timer at a time, and between timers lets real
 * work finish: every microtask and immediate (setImmediate runs once the
 * microtask queue has drained), then whatever `settle` waits for (results
 * being written to disk), then what that work queued in turn. Time so never
 * moves while the code under test is still reacting to the last instant,
 * whatever the machine's speed or load.
 */
export async function runVirtual(run: VirtualRun): Promise<void> {
  const { clock } = run;
  const end = clock.now() + run.limitMs;
  for (;;) {
    await immediate();
    await run.settle();
    await immediate();
    if (run.done()) return;
    const next = clock.nextAt();
    if (next === undefined) throw new Error("the virtual run has nothing left to wait for and is not done");
    if (next > end) throw new Error(`the virtual run is not done after ${run.limitMs / 1000} s of virtual time`);
    clock.runNext();
  }
}

function immediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
