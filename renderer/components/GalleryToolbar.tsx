import { useMemo } from "react";
import { useShallow } from "zustand/react/shallow";
import type { ImageSummary, JobSummary } from "../../shared/ui-api";
import { useFarmStore } from "../stores/farm-store";
import { type GalleryFilters, noFilters, useGalleryStore } from "../stores/gallery-store";
import { Density, useSettingsStore } from "../stores/settings-store";

interface Props {
  /** Every image the gallery holds, to list the models and nodes worth filtering by. */
  all: ImageSummary[];
  shown: number;
  jobs: JobSummary[];
  filters: GalleryFilters;
  /** Set when the filtered job is an X/Y grid: show it as a table or as plain cells. */
  gridView: { on: boolean; toggle(): void } | null;
}

const DENSITY_LABEL: Record<Density, string> = { compact: "Small", comfortable: "Medium", large: "Large" };

/** Filters (job, prompt text, model, node), cell size, and the X/Y switch for grid jobs. */
export function GalleryToolbar({ all, shown, jobs, filters, gridView }: Props) {
  const setFilters = useGalleryStore((s) => s.setFilters);
  const density = useSettingsStore((s) => s.preferences.density);
  const setPreferences = useSettingsStore((s) => s.setPreferences);
  const nodeNames = useFarmStore(useShallow((s) => Object.fromEntries(s.nodes.map((n) => [n.id, n.name]))));
  const { models, nodes } = useMemo(() => {
    const m = new Set<string>();
    const n = new Set<string>();
    for (const image of all) {
      m.add(image.model);
      if (image.nodeId) n.add(image.nodeId);
    }
    return { models: [...m].sort(), nodes: [...n] };
  }, [all]);
  const jobsWithImages = useMemo(() => {
    const ids = new Set(all.map((i) => i.jobId));
    return jobs.filter((j) => ids.has(j.id));
  }, [all, jobs]);
  const filtering = JSON.stringify(filters) !== JSON.stringify(noFilters);

  return (
    <div className="gallery-toolbar">
      <div className="field">
        <label htmlFor="gallery-search">Search prompts</label>
        <input
          id="gallery-search"
          type="search"
          value={filters.text}
          placeholder="lighthouse"
          onChange={(e) => setFilters({ text: e.target.value })}
        />
      </div>
      <div className="field">
        <label htmlFor="gallery-job">Job</label>
        <select
          id="gallery-job"
          value={filters.jobId ?? ""}
          onChange={(e) => setFilters({ jobId: e.target.value || null })}
        >
          <option value="">All jobs</option>
          {jobsWithImages.map((j) => (
            <option key={j.id} value={j.id}>
              {j.name}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="gallery-model">Model</label>
        <select
          id="gallery-model"
          value={filters.model ?? ""}
          onChange={(e) => setFilters({ model: e.target.value || null })}
        >
          <option value="">All models</option>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="gallery-node">Node</label>
        <select
          id="gallery-node"
          value={filters.nodeId ?? ""}
          onChange={(e) => setFilters({ nodeId: e.target.value || null })}
        >
          <option value="">All nodes</option>
          {nodes.map((id) => (
            <option key={id} value={id}>
              {nodeNames[id] ?? id.slice(0, 8)}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor="gallery-density">Cell size</label>
        <select
          id="gallery-density"
          value={density}
          onChange={(e) => setPreferences({ density: Density.parse(e.target.value) })}
        >
          {Density.options.map((d) => (
            <option key={d} value={d}>
              {DENSITY_LABEL[d]}
            </option>
          ))}
        </select>
      </div>
      {gridView && (
        <label className="check">
          <input type="checkbox" checked={gridView.on} onChange={gridView.toggle} />
          <span>X/Y grid</span>
        </label>
      )}
      <span className="gallery-count">
        {shown} image{shown === 1 ? "" : "s"}
      </span>
      {filtering && (
        <button type="button" className="link-button" onClick={() => setFilters(noFilters)}>
          Clear filters
        </button>
      )}
    </div>
  );
}
