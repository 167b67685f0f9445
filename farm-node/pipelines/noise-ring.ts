import { Worker } from "node:worker_threads";
import { type NormalSource, SeededNoise } from "../../shared/seeded-noise";

/**
 * A batch's seeded noise drawn on a thread while ONNX Runtime runs, handed to
 * the sampler through a ring in shared memory. ORT's `run` holds the main
 * thread, so noise made there is pure overhead; made beside it, it is free
 * wherever the model runs on a GPU.
 *
 * Order is the whole contract: the pipeline draws image 0…n−1's initial
 * latents, then one latent's worth per image per noisy step, always in image
 * order, so draw c belongs to image c mod n and the ring holds exactly what
 * each image's own `SeededNoise` would have given it.
 */
export interface NoiseJob {
  /** Int32 words: draws produced, draws consumed, job state. */
  control: SharedArrayBuffer;
  /** `capacity` slots of `size` float32s. */
  data: SharedArrayBuffer;
  seeds: number[];
  size: number;
  draws: number;
  capacity: number;
}

const PRODUCED = 0;
const CONSUMED = 1;
const STATE = 2;
const State = { pending: 0, running: 1, closed: 2, failed: 3 } as const;

/** The producing side, run on the noise thread: fills slots as the consumer frees them. */
export function produceNoise(job: NoiseJob): void {
  const ctl = new Int32Array(job.control);
  if (Atomics.compareExchange(ctl, STATE, State.pending, State.running) !== State.pending) return;
  try {
    const streams = job.seeds.map((seed) => new SeededNoise(seed));
    for (let c = 0; c < job.draws; c++) {
      for (;;) {
        if (Atomics.load(ctl, STATE) !== State.running) return;
        const consumed = Atomics.load(ctl, CONSUMED);
        if (c - consumed < job.capacity) break;
        Atomics.wait(ctl, CONSUMED, consumed);
      }
      const slot = new Float32Array(job.data, (c % job.capacity) * job.size * 4, job.size);
      (streams[c % streams.length] as SeededNoise).fillNormal(slot);
      Atomics.store(ctl, PRODUCED, c + 1);
      Atomics.notify(ctl, PRODUCED);
    }
  } catch (error) {
    Atomics.store(ctl, STATE, State.failed);
    Atomics.notify(ctl, PRODUCED);
    throw error;
  }
}

/**
 * The consuming side: each image's draws, in the order the pipeline takes them.
 * Whenever the thread cannot deliver (still busy with an earlier ring, failed,
 * or silent for `stallMs`), the remaining draws are made here instead, after
 * replaying the ones already taken, so the noise is the same either way.
 */
export class NoiseRing {
  private readonly ctl: Int32Array;
  private taken = 0;
  private local: SeededNoise[] | undefined;

  constructor(
    private readonly job: NoiseJob,
    private readonly stallMs: number,
    /** The ring opened before this one: the thread works through rings in order. */
    private ahead: NoiseRing | undefined,
  ) {
    this.ctl = new Int32Array(job.control);
  }

  /** Image b's stream. */
  source(b: number): NormalSource {
    return { fillNormal: (out) => this.take(b, out) };
  }

  /** True once draws are made on the calling thread. */
  get drawingInPlace(): boolean {
    return this.local !== undefined;
  }

  /** Releases the thread from this job (also when the batch stops early). */
  close(): void {
    this.ahead = undefined;
    Atomics.compareExchange(this.ctl, STATE, State.pending, State.closed);
    Atomics.compareExchange(this.ctl, STATE, State.running, State.closed);
    Atomics.notify(this.ctl, CONSUMED);
  }

  private take(b: number, out: Float32Array): Float32Array {
    const { job, ctl } = this;
    const c = this.taken;
    const n = job.seeds.length;
    if (c >= job.draws || c % n !== b || out.length !== job.size) {
      throw new Error(`noise draw ${c} out of order: image ${b} asked for ${out.length} values`);
    }
    this.taken = c + 1;
    if (this.local || !this.awaitDraw(c)) return this.drawInPlace(c, out);
    out.set(new Float32Array(job.data, (c % job.capacity) * job.size * 4, job.size));
    Atomics.store(ctl, CONSUMED, c + 1);
    Atomics.notify(ctl, CONSUMED);
    return out;
  }

  /** Waits for the thread to produce draw c; false when it will not. */
  private awaitDraw(c: number): boolean {
    const ctl = this.ctl;
    const ahead = this.ahead;
    this.ahead = undefined;
    // Not started while an earlier ring still holds the thread: that batch may be waiting on this one.
    if (
      ahead &&
      !ahead.threadDone() &&
      Atomics.compareExchange(ctl, STATE, State.pending, State.closed) === State.pending
    ) {
      return false;
    }
    for (;;) {
      const produced = Atomics.load(ctl, PRODUCED);
      if (produced > c) return true;
      const state = Atomics.load(ctl, STATE);
      if (state !== State.running && state !== State.pending) return false;
      if (Atomics.wait(ctl, PRODUCED, produced, this.stallMs) === "timed-out") {
        this.close();
        return false;
      }
    }
  }

  /** The thread has nothing more to do for this ring. */
  private threadDone(): boolean {
    const state = Atomics.load(this.ctl, STATE);
    return state === State.closed || state === State.failed || Atomics.load(this.ctl, PRODUCED) >= this.job.draws;
  }

  private drawInPlace(c: number, out: Float32Array): Float32Array {
    if (!this.local) {
      this.local = this.job.seeds.map((seed) => new SeededNoise(seed));
      const skipped = new Float32Array(this.job.size);
      for (let k = 0; k < c; k++) (this.local[k % this.local.length] as SeededNoise).fillNormal(skipped);
    }
    return (this.local[c % this.local.length] as SeededNoise).fillNormal(out);
  }
}

/**
 * The thread registers tsx before importing its TypeScript entry: Node 20
 * does not carry `--import` loaders into worker threads.
 */
const THREAD_BOOT = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./noise-thread.ts", import.meta.url).href)}); })`;

/** Owns the noise thread (started on first use, never keeping the process alive) and opens one ring per batch. */
export class NoisePrefetcher {
  private thread: Worker | undefined;
  private last: NoiseRing | undefined;
  private started: Promise<boolean> = Promise.resolve(false);

  constructor(private readonly stallMs = 10_000) {}

  /** Starts the thread if needed; resolves true once it takes jobs, false if it could not start. */
  ready(): Promise<boolean> {
    this.startThread();
    return this.started;
  }

  /**
   * A ring for `seeds.length` images with `latentSize` values each, for the
   * initial latents and `noisySteps` more draws per image. Two rounds are kept
   * ahead, so memory stays at 2 × batch × latent however many steps there are.
   */
  open(seeds: number[], latentSize: number, noisySteps: number): NoiseRing {
    const draws = seeds.length * (1 + noisySteps);
    const capacity = Math.min(draws, 2 * seeds.length);
    const job: NoiseJob = {
      control: new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT),
      data: new SharedArrayBuffer(capacity * latentSize * Float32Array.BYTES_PER_ELEMENT),
      seeds,
      size: latentSize,
      draws,
      capacity,
    };
    const thread = this.startThread();
    thread?.postMessage(job);
    const ring = new NoiseRing(job, thread ? this.stallMs : 0, this.last);
    this.last = ring;
    return ring;
  }

  async close(): Promise<void> {
    const thread = this.thread;
    this.thread = undefined;
    this.last = undefined;
    await thread?.terminate();
  }

  /** Without a thread (it failed to start) every ring draws in place. */
  private startThread(): Worker | undefined {
    if (this.thread) return this.thread;
    try {
      const thread = new Worker(THREAD_BOOT, { eval: true });
      thread.unref();
      this.started = new Promise((resolve) => {
        thread.once("message", () => resolve(true));
        thread.once("exit", () => resolve(false));
      });
      thread.on("error", (error) => {
        console.error(`noise thread: ${error instanceof Error ? error.message : String(error)}`);
        if (this.thread === thread) this.thread = undefined;
      });
      this.thread = thread;
      return thread;
    } catch (error) {
      console.error(`noise thread did not start: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }
}
