import type { JobSummary, NodeSummary, UiEvent } from "../../shared/ui-api";

interface DeviceLine {
  name: string;
  imagesPerMin: number;
  utilizationPct: number | null;
  simulated: boolean;
}

/**
 * The `kiln render` progress display: one overall bar with images per minute and
 * ETA, and a line per working device. On a terminal it redraws in place; piped to
 * a file it prints a plain line at most every few seconds.
 */
export class ProgressView {
  private job: JobSummary | null = null;
  private readonly devices = new Map<string, DeviceLine>();
  private drawnLines = 0;
  private lastPlain = 0;
  private readonly started = Date.now();
  /** The last push state seen per node and model, to print a line when one starts, ends or fails. */
  private readonly pushes = new Map<string, string>();

  constructor(
    private readonly jobId: string,
    private readonly out: NodeJS.WriteStream,
  ) {}

  onEvent(event: UiEvent): void {
    if (event.type === "queue.changed") {
      const job = event.jobs.find((j) => j.id === this.jobId);
      if (job) this.job = job;
    } else if (event.type === "nodes.changed") {
      for (const line of pushNotices(this.pushes, event.nodes)) this.say(line);
    } else if (event.type === "telemetry") {
      for (const d of event.devices) {
        if (d.state === "busy" || d.imagesTotal > 0 || this.devices.has(d.uuid)) {
          this.devices.set(d.uuid, {
            name: d.name,
            imagesPerMin: d.imagesPerSec * 60,
            utilizationPct: d.utilizationPct,
            simulated: d.simulated,
          });
        }
      }
    }
  }

  /** A line of its own above the progress display (which is drawn again below it): a redraw never erases it. */
  say(line: string): void {
    if (this.out.isTTY && this.drawnLines > 0) {
      this.out.write(`\x1b[${this.drawnLines}A\x1b[J`);
      this.drawnLines = 0;
    }
    this.out.write(`${line}\n`);
  }

  update(job: JobSummary): void {
    this.job = job;
  }

  render(final = false): void {
    const job = this.job;
    if (!job) return;
    const { done, failed, total } = { done: job.counts.done, failed: job.counts.failed, total: job.counts.total };
    const elapsedMin = (Date.now() - this.started) / 60_000;
    const rate = elapsedMin > 0 ? done / elapsedMin : 0;
    const eta = job.etaS === null ? "?" : formatDuration(job.etaS);
    // The last line says what was done; an ETA there (of a job cancelled or given up on) would say nothing true.
    const summary = `${done}/${total} images${failed ? `, ${failed} failed` : ""}  ${rate.toFixed(1)} img/min${final ? "" : `  ETA ${eta}`}`;
    if (!this.out.isTTY) {
      if (final || Date.now() - this.lastPlain > 5000) {
        this.out.write(`${summary}\n`);
        this.lastPlain = Date.now();
      }
      return;
    }
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60));
    const filled = Math.round((done / Math.max(1, total)) * width);
    const lines = [`[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${summary}`];
    for (const d of this.devices.values()) {
      const util = d.utilizationPct === null ? "" : ` ${Math.round(d.utilizationPct)}%`;
      lines.push(
        `  ${d.name.slice(0, 40).padEnd(40)} ${d.imagesPerMin.toFixed(1).padStart(7)} img/min${util}${d.simulated ? " (simulated)" : ""}`,
      );
    }
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}A`);
    this.out.write(lines.map((l) => `\x1b[2K${l}\n`).join(""));
    this.drawnLines = lines.length;
  }
}

/**
 * Lines for the pushes whose state changed since `seen` (which is updated):
 * one when a push starts, one when it is done or failed (with why).
 */
export function pushNotices(seen: Map<string, string>, nodes: readonly NodeSummary[]): string[] {
  const lines: string[] = [];
  for (const node of nodes) {
    for (const push of node.pushes ?? []) {
      const key = `${node.id}\n${push.model}`;
      if (seen.get(key) === push.state) continue;
      seen.set(key, push.state);
      const where = `${node.name} (${node.host}:${node.port})`;
      if (push.state === "pushing")
        lines.push(`pushing ${push.model} to ${where}; it takes work once the pack is there`);
      else if (push.state === "done") lines.push(`${push.model} is on ${where} now`);
      else
        lines.push(`pushing ${push.model} to ${where} failed: ${push.reason ?? "unknown"}; it takes none of this job`);
    }
  }
  return lines;
}

export function formatDuration(seconds: number): string {
  // Whole seconds first, so that 59.5 s reads 1m00s and 119.6 s reads 2m00s, never 60s or 1m60s.
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
