import { useEffect, useState } from "react";
import type { JobSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { stepPosition } from "../model/queue-order";
import { useGalleryStore } from "../stores/gallery-store";
import { useNavStore } from "../stores/nav-store";
import { isFinished, useQueueStore } from "../stores/queue-store";
import { ConfirmButton } from "./ConfirmButton";
import { Icon } from "./Icon";

/** A job's controls. Positions are computed at click time from the current queue, so cards need no props for it. */
export function JobActions({
  job,
  canMoveUp,
  canMoveDown,
}: {
  job: JobSummary;
  canMoveUp: boolean;
  canMoveDown: boolean;
}) {
  const actions = useActions();
  const finished = isFinished(job);
  const [priority, setPriority] = useState(String(job.priority));

  useEffect(() => setPriority(String(job.priority)), [job.priority]);

  function move(direction: -1 | 1) {
    const position = stepPosition(useQueueStore.getState().jobs, job.id, direction);
    if (position !== null) void actions.moveJob(job.id, position);
  }

  function commitPriority() {
    const value = Number(priority);
    // A cleared box is no priority at all: Number("") is 0, which reordered the job unasked.
    if (priority.trim() === "" || !Number.isInteger(value) || value < -100 || value > 100) {
      setPriority(String(job.priority));
      return;
    }
    if (value !== job.priority) void actions.setPriority(job.id, value);
  }

  function openInGallery() {
    useGalleryStore.getState().setFilters({ jobId: job.id });
    useNavStore.getState().show("gallery");
  }

  return (
    <div className="job-actions">
      {!finished && (
        <>
          {job.state === "paused" ? (
            <button type="button" onClick={() => void actions.resumeJob(job.id)}>
              Resume
            </button>
          ) : (
            <button type="button" onClick={() => void actions.pauseJob(job.id)}>
              Pause
            </button>
          )}
          <ConfirmButton label="Cancel" confirmLabel="Cancel job?" onConfirm={() => void actions.cancelJob(job.id)} />
        </>
      )}
      {job.counts.failed > 0 && (
        <button type="button" onClick={() => void actions.retryFailed(job.id)}>
          Retry failed
        </button>
      )}
      {job.counts.done > 0 && !job.transient && (
        <button type="button" onClick={openInGallery}>
          Open in gallery
        </button>
      )}
      {!finished && (
        <span className="job-order">
          <button
            type="button"
            className="icon-button"
            aria-label="Move up"
            disabled={!canMoveUp}
            onClick={() => move(-1)}
          >
            <Icon name="up" />
          </button>
          <button
            type="button"
            className="icon-button"
            aria-label="Move down"
            disabled={!canMoveDown}
            onClick={() => move(1)}
          >
            <Icon name="down" />
          </button>
          <label className="priority">
            <span>Priority</span>
            <input
              type="number"
              min={-100}
              max={100}
              value={priority}
              onChange={(e) => setPriority(e.target.value)}
              onBlur={commitPriority}
              onKeyDown={(e) => {
                if (e.key === "Enter") {
                  e.preventDefault();
                  commitPriority();
                }
              }}
            />
          </label>
        </span>
      )}
    </div>
  );
}
