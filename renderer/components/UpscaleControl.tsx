import { useId, useState } from "react";
import { useShallow } from "zustand/react/shallow";
import type { ImageSummary } from "../../shared/ui-api";
import type { UpscaleScale } from "../../shared/upscale";
import { useActions } from "../api/actions-context";
import { farmModels } from "../model/farm-models";
import { upscalerPacks } from "../model/hires-upscalers";
import { useFarmStore } from "../stores/farm-store";

/**
 * "Upscale" in the viewer and the gallery's selection bar: each finished
 * image as one upscale job (×2 or ×4) with one of the farm's upscaler packs;
 * the results land in the gallery as jobs of their own. Without an upscaler
 * pack on the farm it is off, saying why.
 */
export function UpscaleControl({ images }: { images: ImageSummary[] }) {
  const actions = useActions();
  const packs = useFarmStore(useShallow((s) => upscalerPacks(farmModels(s.nodes))));
  const [picked, setPicked] = useState<string | null>(null);
  const [scale, setScale] = useState<UpscaleScale>(4);
  const model = picked !== null && packs.includes(picked) ? picked : (packs[0] ?? "");
  // The viewer and the selection bar may both show one: each its own id.
  const reasonId = useId();
  // Off while a request is out, so a double click queues one job, not two.
  const [queueing, setQueueing] = useState(false);
  const upscale = async () => {
    setQueueing(true);
    try {
      await actions.upscale(images, model, scale);
    } finally {
      setQueueing(false);
    }
  };
  return (
    <fieldset className="upscale-control" aria-label="Upscale">
      {packs.length > 0 && (
        <>
          <select aria-label="Upscaler pack" value={model} onChange={(e) => setPicked(e.target.value)}>
            {packs.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
          <select aria-label="Upscale factor" value={scale} onChange={(e) => setScale(e.target.value === "2" ? 2 : 4)}>
            <option value={2}>×2</option>
            <option value={4}>×4</option>
          </select>
        </>
      )}
      <button
        type="button"
        disabled={packs.length === 0 || images.length === 0 || queueing}
        aria-describedby={packs.length === 0 ? reasonId : undefined}
        onClick={() => void upscale()}
      >
        {images.length > 1 ? `Upscale ${images.length}` : "Upscale"}
      </button>
      {packs.length === 0 && (
        <span className="hint" id={reasonId}>
          No upscaler pack on the farm
        </span>
      )}
    </fieldset>
  );
}
