import { useShallow } from "zustand/react/shallow";
import { deviceNames } from "../model/device-names";
import { useFarmStore } from "../stores/farm-store";
import { useQueueStore } from "../stores/queue-store";

/** Bars shown per job; more running images are summed up in words. */
const MAX_BARS = 8;

/** Step progress of the job's images rendering now, one bar each, named by device. */
export function ImageStepList({ jobId }: { jobId: string }) {
  const entries = useQueueStore(
    useShallow((s) =>
      Object.values(s.steps)
        .filter((e) => e.jobId === jobId)
        .sort((a, b) => a.seq - b.seq),
    ),
  );
  const names = useFarmStore(
    useShallow((s) => {
      const byUuid = deviceNames(s.nodes);
      return entries.map((e) => byUuid.get(e.device));
    }),
  );
  if (entries.length === 0) return null;
  return (
    <ul className="steps" aria-label="Rendering now">
      {entries.slice(0, MAX_BARS).map((e, i) => {
        const device = names[i] ?? "a device";
        return (
          <li key={e.imageId} className="step">
            <progress max={e.steps} value={e.step} aria-label={`${device}: step ${e.step} of ${e.steps}`} />
            <span className="step-text" aria-hidden="true">
              {e.step}/{e.steps} · {device}
            </span>
          </li>
        );
      })}
      {entries.length > MAX_BARS && <li className="step-more">and {entries.length - MAX_BARS} more</li>}
    </ul>
  );
}
