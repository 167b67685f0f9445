import type { JobSummary } from "../../shared/ui-api";
import { useGalleryStore } from "../stores/gallery-store";

interface Props {
  jobId: string;
  job: JobSummary | undefined;
  images: number;
  /** The gallery shows one job only already. */
  filtered: boolean;
}

/** The heading of a job's images in the gallery, with a way to look at that job alone (and its X/Y grid). */
export function GalleryJobHeader({ jobId, job, images, filtered }: Props) {
  const setFilters = useGalleryStore((s) => s.setFilters);
  return (
    <div className="gallery-job">
      <h3 className="gallery-job-name" title={job?.name}>
        {job?.name ?? jobId}
      </h3>
      <span className="gallery-job-meta">
        {job ? `${job.model} · ${job.width}×${job.height} · ` : ""}
        {images} image{images === 1 ? "" : "s"}
      </span>
      {!filtered && (
        <button type="button" className="link-button" onClick={() => setFilters({ jobId })}>
          Only this job
        </button>
      )}
    </div>
  );
}
