import type { DeviceSample } from "../stores/farm-store";

const WINDOW_MS = 5 * 60_000;
const WIDTH = 300;
const HEIGHT = 32;

/** Points of the polyline: time on x over the last 5 minutes (ending at the newest sample), value on y from 0 to the peak. */
export function sparklinePoints(samples: DeviceSample[], peak: number): string {
  const end = samples.at(-1)?.at ?? 0;
  const top = Math.max(peak, 1);
  return samples
    .map((s) => {
      const x = WIDTH - ((end - s.at) / WINDOW_MS) * WIDTH;
      const y = HEIGHT - 1 - (s.imagesPerMin / top) * (HEIGHT - 2);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

/** Images per minute over the last 5 minutes, as an inline SVG polyline (no chart library, no inline styles). */
export function Sparkline({ samples }: { samples: DeviceSample[] }) {
  const peak = samples.reduce((m, s) => Math.max(m, s.imagesPerMin), 0);
  const label =
    samples.length === 0
      ? "No throughput history yet"
      : `Images per minute over the last 5 minutes, peak ${Math.round(peak)}`;
  return (
    <svg
      className="sparkline"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={label}
    >
      <title>{label}</title>
      {samples.length > 1 && <polyline points={sparklinePoints(samples, peak)} vectorEffect="non-scaling-stroke" />}
    </svg>
  );
}
