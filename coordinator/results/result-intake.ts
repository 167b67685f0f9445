import { SqliteError } from "better-sqlite3";
import type { Logger } from "pino";
import { BLAMELESS_FAILURES, KilnError } from "../../shared/errors";
import { peakSize } from "../../shared/hires-fix";
import type { NodeEvent } from "../../shared/node-events";
import type { ImageSummary, UiEvent } from "../../shared/ui-api";
import type { ChangeFeed } from "../change-feed";
import type { Clock } from "../clock";
import type { Dispatcher } from "../dispatch/dispatcher";
import type { TrackedTask } from "../dispatch/task-tracker";
import type { NodeConnection } from "../nodes/node-connection";
import type { ThroughputModel } from "../scheduling/throughput-model";
import type { Completion, ImageRow, Ledger } from "../store/ledger";
import { maxPngBytes } from "./png-structure";
import { RefusedResult } from "./refused-result";
import type { ResultStore } from "./result-store";

export interface ResultIntakeOptions {
  ledger: Ledger;
  dispatcher: Dispatcher;
  results: ResultStore;
  /** Where a transient job's images go (A1111's `save_images: false`): out of the studio's output folder. */
  spool?: ResultStore;
  model: ThroughputModel;
  changes: ChangeFeed;
  clock: Clock;
  log: Logger;
  emit(event: UiEvent): void;
  /** The output folder refused a result (E_DISK_FULL, E_OUTPUT_UNWRITABLE): the queue pauses, saying why. */
  onOutputRefused(error: KilnError): void;
  /** What a job's files are filed under in the studio layout, and whether they stay out of it. */
  jobFiling(jobId: string): { name: string; createdAt: number; transient?: boolean };
}

type ImageReady = Extract<NodeEvent, { type: "image.ready" }>;

/** Cut downloads of one node count against it at most once in this long: one outage cuts all under way at once. */
const CUT_COUNT_WINDOW_MS = 5000;

/**
 * What nodes report about the tasks they hold: progress for the UI, results
 * downloaded, checked and stored exactly once (a late result, or one for an
 * image another device already delivered, is refused with 409 "not assigned to
 * you" or taken as a repeat), failures counted against the node, cancellations
 * settled. Every outcome from a node's outbox is acknowledged.
 */
export class ResultIntake {
  /**
   * Images whose result is being downloaded and stored, with the attempt whose result it is and how its storing
   * ends: a twin is never stored too, and the same result sent again meanwhile (its node resent it after a
   * dropped link) waits for the first rather than being taken for a twin.
   */
  private readonly storing = new Map<string, { attemptId: string; outcome: Promise<200> }>();
  /** Per node: when a cut download last counted against it (see onStoreFailed). */
  private readonly cutCountedAt = new Map<string, number>();
  /** Results being stored, so stop() can wait for them. */
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly opts: ResultIntakeOptions) {}

  /** Waits for results being stored; outcomes after this are not acknowledged. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.settled();
  }

  /** Resolves once no result is being fetched or stored (at once when none is). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  onEvent(node: NodeConnection, event: NodeEvent): void {
    const { dispatcher } = this.opts;
    switch (event.type) {
      case "task.started": {
        const task = dispatcher.ownTask(node, event.taskId);
        if (task) dispatcher.tasks.started(task, this.opts.clock.now());
        return;
      }
      case "task.progress": {
        const task = dispatcher.ownTask(node, event.taskId);
        const imageId = task?.attempts.get(event.imageId);
        const jobId = imageId ? this.opts.ledger.imageJobId(imageId) : undefined;
        if (task && imageId && jobId)
          this.opts.emit({
            type: "image.progress",
            jobId,
            imageId,
            step: event.step,
            steps: event.steps,
            device: task.device,
          });
        return;
      }
      case "image.ready": {
        const stored = this.onImageReady(node, event).then(
          (status) => {
            if (!this.stopped)
              acknowledge(node, event, status, "not assigned to you: the image was given to another node");
          },
          (error: unknown) => {
            // The ledger refused (busy, its disk full): the app stays up, and the image goes back to the queue. The
            // attempt is settled in its task too, or the task would hold its device's slot for ever.
            this.opts.log.error({ err: error, node: node.id, task: event.taskId }, "could not record a result");
            const task = this.opts.dispatcher.ownTask(node, event.taskId);
            if (task) this.opts.dispatcher.settle(task, event.imageId);
            this.opts.dispatcher.requeueAfterFailure(node.id, [event.imageId], "its result could not be recorded");
          },
        );
        this.inFlight.add(stored);
        void stored.finally(() => this.inFlight.delete(stored));
        return;
      }
      case "task.failed":
        this.onTaskFailed(node, event);
        acknowledge(node, event, 200);
        return;
      case "task.done":
        this.onTaskDone(node, event.taskId);
        acknowledge(node, event, 200);
        return;
      case "task.cancelled":
        this.onTaskCancelled(node, event.taskId);
        acknowledge(node, event, 200);
        return;
      default:
        return;
    }
  }

  /** 200 when the result was taken (or is a repeat of one taken), 409 when the image is no longer this node's. */
  private async onImageReady(node: NodeConnection, event: ImageReady): Promise<200 | 409> {
    const { ledger, dispatcher, clock, log } = this.opts;
    const task = dispatcher.ownTask(node, event.taskId);
    const attemptId = event.imageId;
    const imageId = task?.attempts.get(attemptId);
    if (!task || !imageId || !task.open.has(attemptId)) {
      // A repeated delivery of a result already stored from this very attempt is not a refusal.
      if (ledger.attempt(attemptId)?.state === "done") return 200;
      log.info(
        { node: node.id, task: event.taskId, attempt: attemptId },
        "discarding a result that is no longer assigned to this node",
      );
      return 409;
    }
    const storing = this.storing.get(imageId);
    if (storing?.attemptId === attemptId) return storing.outcome;
    task.announced.add(attemptId);
    const image = ledger.image(imageId);
    // Done already, or cancelled with its job while its task rendered on for other jobs' images: not downloaded.
    if (!image || image.state === "done" || image.state === "cancelled" || storing) {
      ledger.completeImage(attemptId, null, clock.now());
      dispatcher.settle(task, attemptId);
      return 200;
    }
    const outcome = this.storeOnce(node, task, image, event);
    this.storing.set(imageId, { attemptId, outcome });
    return outcome;
  }

  private async storeOnce(node: NodeConnection, task: TrackedTask, image: ImageRow, event: ImageReady): Promise<200> {
    const attemptId = event.imageId;
    try {
      await this.store(node, task, image, event);
    } catch (error) {
      this.onStoreFailed(node, task, attemptId, error);
    } finally {
      this.storing.delete(image.id);
      this.opts.dispatcher.settle(task, attemptId);
    }
    return 200;
  }

  private async store(node: NodeConnection, task: TrackedTask, image: ImageRow, event: ImageReady): Promise<void> {
    const { ledger, dispatcher, clock, log } = this.opts;
    const attemptId = event.imageId;
    // Hires fix: the PNG is the second pass's size, not the image's (its first pass).
    const size = peakSize({ width: image.width, height: image.height, hires: task.work.hires });
    // A file far larger than any PNG of its size is padding: not even downloaded.
    if (event.bytes > maxPngBytes(size.width, size.height)) {
      throw new RefusedResult(
        "E_TOO_LARGE",
        `image ${image.index} of job ${image.jobId}: the node announced ${event.bytes} bytes, more than a ${size.width}×${size.height} PNG can take; not downloaded`,
      );
    }
    const png = await node.client.image(attemptId, event.bytes);
    // The device the task was sent to, not the one the event names: a LAN node's word must not add devices to the
    // learned speeds (and their file) or to the results. A farm picks the device itself, and says which.
    const device = node.farm ? event.device : task.device;
    const job = this.opts.jobFiling(image.jobId);
    const results = job.transient && this.opts.spool ? this.opts.spool : this.opts.results;
    const path = await results.write({
      jobId: image.jobId,
      jobName: job.name,
      createdAt: job.createdAt,
      index: image.index,
      seed: image.seed,
      png,
      sha256: event.sha256,
      ...size,
    });
    let outcome: Completion;
    try {
      outcome = ledger.completeImage(
        attemptId,
        {
          path,
          sha256: event.sha256,
          bytes: png.length,
          nodeId: node.id,
          device,
          // The node's record of the image: where its time went and, where measured, its energy.
          timings: event.energy ? { ...event.timings, energyJ: event.energy.energyJ } : event.timings,
        },
        clock.now(),
      );
    } catch (error) {
      // Not stored (the ledger busy past its wait, its disk full): no file of it stays in the output folder.
      await results.discard(path);
      throw error;
    }
    if (!outcome.accepted) {
      await results.discard(path);
      log.info({ attempt: attemptId, reason: outcome.reason }, "result discarded");
      return;
    }
    for (const twin of outcome.twins) dispatcher.closeTwin(twin.attemptId, twin.taskId);
    this.opts.model.observe(`${node.id}/${device}`, task.work, event.timings.inferenceMs / 1000);
    if (event.energy) {
      this.opts.model.energy.observe(`${node.id}/${device}`, task.work, event.energy.energyJ);
      ledger.energy.stored(image.jobId, event.energy.energyJ);
    }
    const done = ledger.image(image.id);
    if (done)
      this.opts.emit({
        type: "image.done",
        image: toImageSummary(done),
        ...(job.transient ? { transient: true } : {}),
      });
    this.opts.changes.queueChanged();
    try {
      ledger.recordNodeSuccess(node.id, task.work.model);
    } catch (error) {
      // The image is stored; a busy ledger only leaves the node's run of failures uncleared until its next success.
      log.warn({ err: error, node: node.id }, "stored a result but could not record its node's success");
    }
  }

  private onStoreFailed(node: NodeConnection, task: TrackedTask, attemptId: string, error: unknown): void {
    // The app's own ledger refused (busy past its wait, its disk full): neither the node nor the image is at fault.
    // Thrown on, the attempt goes back to the queue as lost (see onEvent), or is offered again until the ledger takes it.
    if (error instanceof SqliteError) throw error;
    const { ledger, clock, log, changes } = this.opts;
    // What the node sent or answered is its word, whatever code it names: only the app's own errors pause or spare.
    const kilnError = error instanceof KilnError && !(error instanceof RefusedResult) ? error : null;
    if (kilnError?.code === "E_DISK_FULL" || kilnError?.code === "E_OUTPUT_UNWRITABLE") {
      log.error({ err: error }, "the output folder refused a result; pausing the queue");
      ledger.loseAttempts([attemptId], kilnError.message, clock.now());
      this.opts.onOutputRefused(kilnError);
    } else if (kilnError?.code === "E_IDENTITY_CHANGED") {
      // Another certificate answers at the node's address: nothing is fetched from it, and the node is no longer
      // trusted (its work goes back to the queue). The image is not at fault, nor is the node we paired.
      log.warn(
        { err: error, attempt: attemptId },
        "a result's node presents another certificate; the image goes back to the queue",
      );
      ledger.loseAttempts([attemptId], kilnError.message, clock.now());
    } else if (kilnError?.code === "E_UNREACHABLE" && this.stopped) {
      // This app is stopping and closed its own links under the download: the attempt stays in flight, restored at
      // the next start, and the node (whose outbox keeps the result) delivers it then instead of rendering it again.
      log.info(
        { attempt: attemptId },
        "a result's download ended with the app's stop; it is fetched at the next start",
      );
    } else if (kilnError?.code === "E_UNREACHABLE") {
      // The network cut the download: the image goes back to the queue, not counted a failure. The node is counted
      // while it is still heard from (its results cannot be fetched, its heartbeats arrive: a broken data path,
      // which would otherwise take the same images again and again), at most once a window: one outage cuts every
      // download under way at once, and a link down for seconds must not blocklist a sound node for good.
      log.warn({ err: error, attempt: attemptId }, "could not fetch a result; the image goes back to the queue");
      const now = clock.now();
      ledger.loseAttempts([attemptId], kilnError.message, now);
      const counted = this.cutCountedAt.get(node.id);
      if (
        !this.stopped &&
        !node.farm &&
        node.status === "online" &&
        (counted === undefined || now - counted >= CUT_COUNT_WINDOW_MS)
      ) {
        this.cutCountedAt.set(node.id, now);
        if (ledger.recordNodeFailure(node.id, task.work.model, now)) changes.nodesChanged();
      }
    } else {
      log.warn({ err: error, attempt: attemptId }, "could not fetch or store a result");
      ledger.failAttempt(
        attemptId,
        { code: kilnError?.code ?? "E_INTERNAL", message: (error as Error).message, retriable: true },
        clock.now(),
      );
      // A result it announced and then did not deliver, or not the task's PNG: counted against the node, as a
      // failed task is (not while this app stops: its own closing links end downloads then).
      if (!this.stopped && !node.farm && ledger.recordNodeFailure(node.id, task.work.model, clock.now()))
        changes.nodesChanged();
    }
    changes.queueChanged();
  }

  private onTaskFailed(node: NodeConnection, event: Extract<NodeEvent, { type: "task.failed" }>): void {
    const { ledger, dispatcher, clock, log } = this.opts;
    const task = dispatcher.ownTask(node, event.taskId);
    if (!task) return;
    const blameless = BLAMELESS_FAILURES.has(event.code);
    const completed = new Set(event.completedImageIds);
    this.endAttempts(node, task, completed, (attemptId) => {
      if (blameless) ledger.loseAttempts([attemptId], event.message, clock.now());
      else
        ledger.failAttempt(
          attemptId,
          { code: event.code, message: event.message, retriable: event.retriable },
          clock.now(),
        );
    });
    if (!blameless && !node.farm && ledger.recordNodeFailure(node.id, task.work.model, clock.now()))
      this.opts.changes.nodesChanged();
    log.warn({ node: node.id, task: event.taskId, code: event.code, message: event.message }, "task failed on a node");
    this.opts.changes.queueChanged();
  }

  private onTaskDone(node: NodeConnection, taskId: string): void {
    const { ledger, dispatcher, clock } = this.opts;
    const task = dispatcher.ownTask(node, taskId);
    if (!task) return;
    this.endAttempts(node, task, NONE, (attemptId) =>
      ledger.failAttempt(
        attemptId,
        { code: "E_INTERNAL", message: "the node finished the task without this image", retriable: true },
        clock.now(),
      ),
    );
  }

  private onTaskCancelled(node: NodeConnection, taskId: string): void {
    const { ledger, dispatcher, clock } = this.opts;
    const task = dispatcher.ownTask(node, taskId);
    if (!task) return;
    this.endAttempts(node, task, NONE, (attemptId) => ledger.cancelAttempt(attemptId, clock.now()));
    this.opts.changes.queueChanged();
  }

  /**
   * Ends, by `record`, each attempt of a task its node has finished with, except those whose results it announced
   * (and `delivered`). Where the ledger refuses one (busy past its timeout), the rest go back to the queue, or are
   * offered to it until it takes them: settled here with no end recorded, they would stay running for ever.
   */
  private endAttempts(
    node: NodeConnection,
    task: TrackedTask,
    delivered: ReadonlySet<string>,
    record: (attemptId: string) => void,
  ): void {
    const { dispatcher, log } = this.opts;
    const open = [...task.open].filter((a) => !task.announced.has(a) && !delivered.has(a));
    for (const [k, attemptId] of open.entries()) {
      try {
        record(attemptId);
      } catch (error) {
        log.error(
          { err: error, node: node.id, task: task.taskId },
          "could not record a task's end; its images go back to the queue",
        );
        const rest = open.slice(k);
        for (const a of rest) dispatcher.settle(task, a);
        dispatcher.requeueAfterFailure(node.id, rest, "its task's end could not be recorded");
        return;
      }
      dispatcher.settle(task, attemptId);
    }
  }
}

const NONE: ReadonlySet<string> = new Set();

/** Tells the node an outcome from its outbox was taken, or refused (409) as no longer its work. */
function acknowledge(node: NodeConnection, event: NodeEvent, status: 200 | 409, reason?: string): void {
  if (event.delivery !== undefined) node.client.ack(event.delivery, status, status === 409 ? reason : undefined);
}

export function toImageSummary(image: ImageRow): ImageSummary {
  return {
    id: image.id,
    jobId: image.jobId,
    index: image.index,
    state: image.state,
    prompt: image.prompt,
    negativePrompt: image.negativePrompt,
    seed: image.seed,
    model: image.model,
    width: image.width,
    height: image.height,
    steps: image.steps,
    guidance: image.guidance,
    sampler: image.sampler,
    gridX: image.gridX,
    gridY: image.gridY,
    path: image.path,
    nodeId: image.nodeId,
    device: image.device,
    error: image.error,
  };
}
