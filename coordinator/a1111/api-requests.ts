import { readFile } from "node:fs/promises";
import type { UiEvent } from "../../shared/ui-api";
import type { Coordinator } from "../coordinator";
import { jobTimestamp } from "./txt2img-info";

/** How often a request's job is looked at besides the events that may have finished it. */
const POLL_MS = 250;
/** How often jobs are asked whether any device can run them at all. */
const STALL_CHECK_MS = 1000;
/** A request whose job no device can run for this long is answered with why (as `kiln render` gives up). */
export const DEFAULT_STALL_GRACE_MS = 10_000;
const FINISHED = new Set(["done", "failed", "cancelled"]);

/** One txt2img or img2img request in flight: its job, and what `progress` reports of it. */
export interface ApiRequest {
  jobId: string;
  /** Which route asked: `progress` names it as A1111's state.job does. */
  job: "txt2img" | "img2img";
  /** The API user, or the client's address without `--api-auth`: whose `progress` and `interrupt` it is. */
  client: string;
  total: number;
  batchSize: number;
  steps: number;
  startedAt: number;
  done: number;
  /** Images rendering now: step reached of steps. */
  running: Map<string, { step: number; steps: number }>;
  /** The newest finished image's file, for `current_image`. */
  latestPath: string | null;
  interrupted: boolean;
  /** Why it was given up: no device of the farm could run its job (the job is cancelled). */
  stalled: string | null;
  finished: Promise<void>;
}

/**
 * The txt2img requests in flight and what A1111's `progress` reports of them.
 * A1111 renders one request at a time and reports that one to everybody; Kiln
 * runs every client's requests at once, so each client sees its own: the
 * progress of all its requests together, the newest image any of them finished.
 */
export class ApiRequests {
  private readonly byJob = new Map<string, ApiRequest & { settle(): void }>();
  private readonly timer: NodeJS.Timeout;
  private readonly onEvent = (event: UiEvent) => this.observe(event);
  /** Since when each job has had no device able to run it. */
  private readonly stalledSince = new Map<string, number>();
  private nextStallCheck = 0;

  constructor(
    private readonly coordinator: Coordinator,
    private readonly stallGraceMs = DEFAULT_STALL_GRACE_MS,
  ) {
    coordinator.on("ui", this.onEvent);
    this.timer = setInterval(() => {
      this.checkAll();
      this.checkStalls();
    }, POLL_MS);
    this.timer.unref();
  }

  /**
   * The server is stopping: every request waiting for its job is answered now
   * with what is finished (as an interrupted one), so stopping never waits for
   * a job to end. A transient job (`save_images` false) is cancelled: its client
   * has its answer, and nobody else would ever get its pictures (the desktop
   * app's switch turned off while the app runs on). A saved job stays in the
   * queue and renders into the gallery.
   */
  close(): void {
    clearInterval(this.timer);
    this.coordinator.off("ui", this.onEvent);
    for (const request of [...this.byJob.values()]) {
      request.interrupted = true;
      try {
        if (this.coordinator.ledger.job(request.jobId)?.spec.transient) this.coordinator.cancelJob(request.jobId);
      } catch {
        // The ledger is busy past its wait: every request is still answered, and the next start cancels the job
        // (cancelOrphanedRequests).
      }
      request.settle();
    }
  }

  /** Tracks a submitted job; its `finished` resolves once every image is done, failed or cancelled. */
  track(jobId: string, fields: Pick<ApiRequest, "job" | "client" | "total" | "batchSize" | "steps">): ApiRequest {
    let settle = () => {};
    const finished = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const request = {
      ...fields,
      jobId,
      startedAt: Date.now(),
      done: 0,
      running: new Map(),
      latestPath: null,
      interrupted: false,
      stalled: null,
      finished,
      settle: () => {
        this.byJob.delete(jobId);
        this.stalledSince.delete(jobId);
        settle();
      },
    };
    this.byJob.set(jobId, request);
    this.check(request);
    return request;
  }

  /** Cancels every request of this client; their answers carry what was finished. Returns how many. */
  interrupt(client: string): number {
    let count = 0;
    for (const request of this.of(client)) {
      request.interrupted = true;
      this.coordinator.cancelJob(request.jobId);
      count++;
    }
    return count;
  }

  /** Cancels one request whose client went away. */
  abandon(request: ApiRequest): void {
    if (!this.byJob.has(request.jobId)) return;
    request.interrupted = true;
    this.coordinator.cancelJob(request.jobId);
  }

  /** `GET /sdapi/v1/progress` for this client, in A1111's ProgressResponse shape. */
  async progress(client: string, withImage: boolean): Promise<Record<string, unknown>> {
    const requests = this.of(client);
    if (requests.length === 0)
      return { progress: 0, eta_relative: 0, state: idleState(), current_image: null, textinfo: null };
    let total = 0;
    let done = 0;
    let step = 0;
    let steps = 0;
    for (const r of requests) {
      total += r.total;
      done += r.done;
      for (const running of r.running.values()) {
        done += running.steps > 0 ? running.step / running.steps : 0;
        step = Math.max(step, running.step);
        steps = Math.max(steps, running.steps);
      }
    }
    const first = requests.reduce((a, b) => (a.startedAt <= b.startedAt ? a : b));
    const batches = requests.reduce((sum, r) => sum + Math.ceil(r.total / r.batchSize), 0);
    const batchesDone = requests.reduce((sum, r) => sum + Math.floor(r.done / r.batchSize), 0);
    // As A1111 does: a little progress from the start, so the ETA is defined at once.
    const progress = Math.min(1, 0.01 + done / Math.max(1, total));
    const elapsed = (Date.now() - first.startedAt) / 1000;
    const newest = requests.map((r) => r.latestPath).find((p) => p !== null) ?? null;
    return {
      progress,
      eta_relative: Math.max(0, elapsed / progress - elapsed),
      state: {
        skipped: false,
        interrupted: requests.some((r) => r.interrupted),
        stopping_generation: false,
        job: first.job,
        job_count: batches,
        job_timestamp: jobTimestamp(first.startedAt),
        job_no: batchesDone,
        sampling_step: step,
        sampling_steps: steps || first.steps,
      },
      current_image: withImage && newest ? await readBase64(newest) : null,
      textinfo: null,
    };
  }

  private of(client: string): ApiRequest[] {
    return [...this.byJob.values()].filter((r) => r.client === client).sort((a, b) => b.startedAt - a.startedAt);
  }

  private observe(event: UiEvent): void {
    if (event.type === "image.progress") {
      const request = this.byJob.get(event.jobId);
      request?.running.set(event.imageId, { step: event.step, steps: event.steps });
    } else if (event.type === "image.done") {
      const request = this.byJob.get(event.image.jobId);
      if (!request) return;
      request.running.delete(event.image.id);
      request.done++;
      if (event.image.path) request.latestPath = event.image.path;
      this.check(request);
    } else if (event.type === "queue.changed") {
      this.checkAll();
    }
  }

  /**
   * A job no device can run (no online node has its model, every node with it
   * is blocklisted) would keep its client waiting for ever: after the grace it
   * is cancelled and the request answered with the reason.
   */
  private checkStalls(): void {
    const now = Date.now();
    if (this.byJob.size === 0 || now < this.nextStallCheck) return;
    this.nextStallCheck = now + STALL_CHECK_MS;
    const reasons = new Map(this.coordinator.listJobs(false).map((j) => [j.id, j.stalled]));
    for (const request of [...this.byJob.values()]) {
      const reason = reasons.get(request.jobId) ?? null;
      if (reason === null) {
        this.stalledSince.delete(request.jobId);
        continue;
      }
      const since = this.stalledSince.get(request.jobId) ?? now;
      this.stalledSince.set(request.jobId, since);
      if (now - since < this.stallGraceMs) continue;
      this.stalledSince.delete(request.jobId);
      request.stalled = reason;
      this.coordinator.cancelJob(request.jobId);
      request.settle();
    }
  }

  private checkAll(): void {
    for (const request of [...this.byJob.values()]) this.check(request);
  }

  private check(request: ApiRequest & { settle(): void }): void {
    const job = this.coordinator.ledger.job(request.jobId);
    if (!job || FINISHED.has(job.state)) request.settle();
  }
}

function idleState(): Record<string, unknown> {
  return {
    skipped: false,
    interrupted: false,
    stopping_generation: false,
    job: "",
    job_count: 0,
    job_timestamp: "0",
    job_no: 0,
    sampling_step: 0,
    sampling_steps: 0,
  };
}

async function readBase64(path: string): Promise<string | null> {
  try {
    return (await readFile(path)).toString("base64");
  } catch {
    return null;
  }
}
