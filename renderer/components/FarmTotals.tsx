import { useFarmStore } from "../stores/farm-store";

/** The farm at a glance: devices at work, throughput, VRAM in use. */
export function FarmTotals() {
  const totals = useFarmStore((s) => s.totals);
  return (
    <dl className="farm-totals" aria-label="Farm totals">
      <div>
        <dt>Devices</dt>
        <dd>
          {totals.devices} <span className="dim">({totals.busy} busy)</span>
        </dd>
      </div>
      <div>
        <dt>Images/min</dt>
        <dd>{Math.round(totals.imagesPerMin)}</dd>
      </div>
      <div>
        <dt>VRAM in use</dt>
        <dd>
          {totals.vramTotalMb > 0 ? (
            <>
              <meter min={0} max={totals.vramTotalMb} value={totals.vramUsedMb} aria-label="Farm VRAM in use" />
              {(totals.vramUsedMb / 1024).toFixed(1)} / {(totals.vramTotalMb / 1024).toFixed(1)} GB
            </>
          ) : (
            "—"
          )}
        </dd>
      </div>
    </dl>
  );
}
