import { useState } from "react";
import { useActions } from "../api/actions-context";
import { isFinished, useQueueStore } from "../stores/queue-store";
import { JobCard } from "./JobCard";
import "../styles/queue.css";

/** Finished jobs shown at first; the rest on request (a studio's history runs into thousands). */
const FINISHED_PAGE = 20;

/** The queue: unfinished jobs in the order they run, then finished ones, newest first. */
export function QueueList() {
  const actions = useActions();
  const jobs = useQueueStore((s) => s.jobs);
  const queuePaused = useQueueStore((s) => s.queuePaused);
  const pauseReason = useQueueStore((s) => s.pauseReason);
  const loaded = useQueueStore((s) => s.loaded);
  const [shown, setShown] = useState(FINISHED_PAGE);
  const active = jobs.filter((j) => !isFinished(j));
  const finished = jobs.filter(isFinished);

  return (
    <section className="queue" aria-labelledby="queue-heading">
      <div className="queue-head">
        <h2 id="queue-heading">
          Queue <span className="heading-count">{active.length > 0 ? `${active.length} active` : ""}</span>
        </h2>
        <span className="badge badge-paused" role="status">
          {queuePaused ? (pauseReason ? `Queue paused: ${pauseReason}` : "Queue paused") : ""}
        </span>
        <button
          type="button"
          className="queue-toggle"
          onClick={() => void (queuePaused ? actions.resumeQueue() : actions.pauseQueue())}
        >
          {queuePaused ? "Resume queue" : "Pause queue"}
        </button>
      </div>
      {loaded && jobs.length === 0 && <p className="empty">Nothing queued yet. Write a prompt and press Render.</p>}
      {active.length > 0 && (
        <ol className="job-list" aria-label="Active jobs">
          {active.map((job, i) => (
            <JobCard
              key={job.id}
              job={job}
              canMoveUp={active[i - 1]?.priority === job.priority}
              canMoveDown={active[i + 1]?.priority === job.priority}
            />
          ))}
        </ol>
      )}
      {finished.length > 0 && (
        <>
          <h3 className="queue-subheading">Finished</h3>
          <ol className="job-list" aria-label="Finished jobs">
            {finished.slice(0, shown).map((job) => (
              <JobCard key={job.id} job={job} canMoveUp={false} canMoveDown={false} />
            ))}
          </ol>
          {finished.length > shown && (
            <button type="button" className="link-button" onClick={() => setShown((n) => n + FINISHED_PAGE)}>
              Show {Math.min(FINISHED_PAGE, finished.length - shown)} more of {finished.length - shown}
            </button>
          )}
        </>
      )}
    </section>
  );
}
