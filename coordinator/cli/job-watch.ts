import { KilnError } from "../../shared/errors";
import type { JobSummary } from "../../shared/ui-api";
import type { Coordinator } from "../coordinator";
import type { ProgressView } from "./progress-view";

/** How long a command lets its jobs sit with no device able to run them before giving up. */
export const STALL_GRACE_MS = 5000;
/** …while a node of the farm is away (a reboot, a Wi-Fi drop): as long as a command waits for its first node. */
export const NODE_RETURN_GRACE_MS = 60_000;

/** Whether the queue is paused, and why when the app paused it itself (Coordinator.queuePause). */
export type QueuePause = { reason: string | null; resumesBySelf: boolean } | null;

export interface WatchReading {
  now: number;
  /** Why the command's jobs wait with no device able to take them (the first such reason), or null. */
  stalled: string | null;
  /** Whether a node the farm knows is away now: it may come back and take them. */
  nodeAway: boolean;
  pause: QueuePause;
}

export type WatchVerdict = { wait: true; say?: string } | { wait: false; reason: string };

/** What a person's pause of the queue tells a command that cannot resume it for them. */
export const PAUSED_BY_A_PERSON =
  "the queue in this data dir is paused (in the Kiln app or kiln serve's UI): resume it there, or give this command its own --data-dir";

/**
 * When a command stops waiting for its jobs and says why: a job nothing can
 * run gives up after STALL_GRACE_MS (NODE_RETURN_GRACE_MS while a node is away,
 * so a node's reboot does not cancel an overnight render); a queue paused for
 * a full disk is waited out (it resumes by itself), any other pause is given up
 * on at once. Plain data in, a verdict out: the polling lives in watchJobs.
 */
export class StallWatch {
  private stalledSince: number | null = null;
  private said: string | null = null;
  /** When a node was last seen away; a node back online lists its models only once its workers are up. */
  private awayAt: number | null = null;
  private wasAway = false;

  observe(reading: WatchReading): WatchVerdict {
    const { now, stalled, nodeAway, pause } = reading;
    // A node that was away and is back gets a grace of its own from its return: online again, it has no models
    // until its workers have loaded, and the job is still stalled meanwhile.
    const cameBack = this.wasAway && !nodeAway;
    this.wasAway = nodeAway;
    if (nodeAway) this.awayAt = now;
    if (pause) {
      this.stalledSince = null;
      if (!pause.resumesBySelf) return { wait: false, reason: pause.reason ?? PAUSED_BY_A_PERSON };
      return this.once(`paused: ${pause.reason}; waiting for the disk to have room`);
    }
    if (stalled === null) {
      this.stalledSince = null;
      this.said = null;
      return { wait: true };
    }
    if (cameBack) this.stalledSince = now;
    this.stalledSince ??= now;
    const recentlyAway = this.awayAt !== null && now - this.awayAt <= NODE_RETURN_GRACE_MS;
    const grace = nodeAway || recentlyAway ? NODE_RETURN_GRACE_MS : STALL_GRACE_MS;
    if (now - this.stalledSince > grace) return { wait: false, reason: stalled };
    return nodeAway ? this.once(`${stalled}; waiting up to ${grace / 1000} s for a node to come back`) : { wait: true };
  }

  private once(line: string): WatchVerdict {
    if (this.said === line) return { wait: true };
    this.said = line;
    return { wait: true, say: line };
  }
}

/** Before a command queues anything: a person's pause of the queue is theirs to end, and the command is refused. */
export function refuseAPersonsPause(coordinator: Pick<Coordinator, "queuePause">): void {
  if (coordinator.queuePause()?.reason === null) throw new KilnError("E_CONFLICT", PAUSED_BY_A_PERSON);
}

/**
 * Once the command's jobs are queued: a pause the app made itself (a full disk, an output folder it could not
 * write, perhaps another command's) ends, since this command is the attempt to render again, and says so; and
 * says when other unfinished jobs of the data dir's queue will render too, into this command's output.
 */
export function startQueue(
  coordinator: Pick<Coordinator, "queuePause" | "resumeQueue" | "listJobs">,
  own: readonly string[],
  say: (line: string) => void,
): void {
  const pause = coordinator.queuePause();
  if (pause && pause.reason !== null) {
    say(`the queue was paused (${pause.reason}); resuming it for this command`);
    coordinator.resumeQueue();
  }
  const others = coordinator.listJobs(false).filter((j) => !own.includes(j.id) && j.state !== "paused").length;
  if (others > 0)
    say(
      `${others} other unfinished job${others === 1 ? " is" : "s are"} queued in this data dir and render${others === 1 ? "s" : ""} too, into this command's output: cancel ${others === 1 ? "it" : "them"} in kiln serve's UI, or give this command its own --data-dir`,
    );
}

export interface WatchResult {
  jobs: JobSummary[];
  /** Why the command gave up on them (they are cancelled), or null. */
  gaveUp: string | null;
  /** Stopped by the person (Ctrl-C, or a SIGTERM or SIGHUP: a closed terminal, a `timeout`). */
  interrupted: boolean;
}

/**
 * Watches a command's jobs to their end, redrawing the progress display: the
 * first SIGINT, SIGTERM or SIGHUP cancels them (nothing of them is left queued to
 * run later, into another command's folder), a second quits at once. Gives up,
 * cancelling, as StallWatch decides.
 */
export function watchJobs(
  coordinator: Coordinator,
  jobIds: readonly string[],
  view: ProgressView,
  combine: (jobs: JobSummary[]) => JobSummary,
): Promise<WatchResult> {
  const cancelAll = () => {
    for (const id of jobIds) coordinator.cancelJob(id);
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    view.say("cancelling (Ctrl-C again to quit at once)...");
    cancelAll();
  };
  // SIGHUP only from a terminal: under nohup (stdout and stderr sent to a file, by GNU's and BSD's alike; BSD's leaves
  // stdin on the terminal) it stays ignored, as the person asked.
  const terminal = process.stdout.isTTY || process.stderr.isTTY;
  const signals = terminal ? (["SIGINT", "SIGTERM", "SIGHUP"] as const) : (["SIGINT", "SIGTERM"] as const);
  for (const signal of signals) process.on(signal, onSignal);
  const watch = new StallWatch();
  let gaveUp: string | null = null;
  return new Promise<WatchResult>((resolveWatch) => {
    const timer = setInterval(() => {
      const jobs = jobIds.map((id) => coordinator.job(id)).filter((j): j is JobSummary => j !== null);
      if (jobs.length === 0) return;
      view.update(combine(jobs));
      view.render();
      if (jobs.every((j) => ["done", "failed", "cancelled"].includes(j.state))) {
        clearInterval(timer);
        for (const signal of signals) process.off(signal, onSignal);
        resolveWatch({ jobs, gaveUp, interrupted });
        return;
      }
      if (gaveUp !== null || interrupted) return;
      const verdict = watch.observe({
        now: Date.now(),
        stalled: jobs.find((j) => j.stalled)?.stalled ?? null,
        nodeAway: coordinator.listNodes().some((n) => n.status === "lost"),
        pause: coordinator.queuePause(),
      });
      if (verdict.wait) {
        if (verdict.say) view.say(verdict.say);
        return;
      }
      gaveUp = verdict.reason;
      view.say(`stalled: ${verdict.reason}`);
      cancelAll();
    }, 250);
  });
}
