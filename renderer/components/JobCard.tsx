import { type DragEvent, memo, useState } from "react";
import { useShallow } from "zustand/react/shallow";
import { energySummary } from "../../shared/energy-text";
import type { JobSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { deviceNames } from "../model/device-names";
import { etaText } from "../model/eta-text";
import { useFarmStore } from "../stores/farm-store";
import { isFinished } from "../stores/queue-store";
import { Icon } from "./Icon";
import { ImageStepList } from "./ImageStepList";
import { JobActions } from "./JobActions";

/** Drag payload type: a job id, and nothing a drop from outside the app could fake into an action. */
export const JOB_DRAG_TYPE = "application/x-kiln-job";

const STATE_LABEL: Record<JobSummary["state"], string> = {
  queued: "queued",
  running: "running",
  paused: "paused",
  done: "done",
  failed: "failed",
  cancelled: "cancelled",
};

/** When a job was queued tells two runs of the same prompt apart. */
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

interface Props {
  job: JobSummary;
  /** A neighbour of the same priority above or below: positions order only jobs of one priority. */
  canMoveUp: boolean;
  canMoveDown: boolean;
}

/**
 * One job: state, progress (images and the steps of those rendering now), ETA,
 * devices, and what went wrong in words. Unfinished jobs can be dragged onto
 * another to move before or after it (Move up / Move down do the same from the keyboard).
 */
export const JobCard = memo(function JobCard({ job, canMoveUp, canMoveDown }: Props) {
  const actions = useActions();
  const [drop, setDrop] = useState<"before" | "after" | null>(null);
  const finished = isFinished(job);
  const devices = useFarmStore(
    useShallow((s) => {
      const names = deviceNames(s.nodes);
      return job.devices.map((uuid) => names.get(uuid) ?? uuid.slice(0, 8));
    }),
  );
  const { total, done, failed, cancelled } = job.counts;
  const energy = job.energy ? energySummary(job.energy) : null;
  const nameId = `job-${job.id}-name`;

  function where(e: DragEvent<HTMLElement>): "before" | "after" {
    const box = e.currentTarget.getBoundingClientRect();
    return e.clientY < box.top + box.height / 2 ? "before" : "after";
  }

  const dragProps = finished
    ? {}
    : {
        draggable: true,
        onDragStart: (e: DragEvent<HTMLElement>) => {
          e.dataTransfer.setData(JOB_DRAG_TYPE, job.id);
          e.dataTransfer.effectAllowed = "move";
        },
        onDragOver: (e: DragEvent<HTMLElement>) => {
          if (!e.dataTransfer.types.includes(JOB_DRAG_TYPE)) return;
          e.preventDefault();
          e.dataTransfer.dropEffect = "move";
          setDrop(where(e));
        },
        onDragLeave: () => setDrop(null),
        onDrop: (e: DragEvent<HTMLElement>) => {
          e.preventDefault();
          setDrop(null);
          const dragged = e.dataTransfer.getData(JOB_DRAG_TYPE);
          if (!dragged || dragged === job.id) return;
          void actions.moveJobBeside(dragged, job.id, where(e));
        },
      };

  return (
    <li className="job-item">
      <article className={`job job-${job.state}${drop ? ` drop-${drop}` : ""}`} aria-labelledby={nameId} {...dragProps}>
        <header className="job-head">
          {!finished && (
            <span className="grip" title="Drag to reorder">
              <Icon name="grip" />
            </span>
          )}
          <h3 id={nameId} className="job-name" title={job.name}>
            {job.name}
          </h3>
          <span className={`badge badge-${job.state}`}>{STATE_LABEL[job.state]}</span>
        </header>
        <p className="job-meta">
          <time dateTime={new Date(job.createdAt).toISOString()}>{timeOfDay.format(job.createdAt)}</time> · {job.model}{" "}
          · {job.width}×{job.height}
          {job.priority !== 0 ? ` · priority ${job.priority}` : ""}
          {job.source && <span className="job-source"> · from the A1111 API ({job.source.client})</span>}
        </p>
        <div className="job-progress">
          <progress max={Math.max(1, total - cancelled)} value={done} aria-label="Images done" />
          <span className="job-counts">
            {done} / {total - cancelled} done
            {failed > 0 ? ` · ${failed} failed` : ""}
            {cancelled > 0 ? ` · ${cancelled} cancelled` : ""}
            {!finished && job.etaS !== null && job.etaS > 0 ? ` · ${etaText(job.etaS)} left` : ""}
            {energy ? ` · ${energy}` : ""}
          </span>
        </div>
        {!finished && <ImageStepList jobId={job.id} />}
        {devices.length > 0 && <p className="job-devices">On {devices.join(", ")}</p>}
        {job.stalled && <p className="job-problem">Waiting: {job.stalled}. Check the Farm tab.</p>}
        {job.lastError && (
          <p className="job-error">
            Last error: {job.lastError}
            {failed > 0 ? ". Fix the cause, then Retry failed." : ""}
          </p>
        )}
        <JobActions job={job} canMoveUp={canMoveUp} canMoveDown={canMoveDown} />
      </article>
    </li>
  );
});
