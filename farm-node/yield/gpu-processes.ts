import { execFile } from "node:child_process";

/** The columns asked of `nvidia-smi --query-compute-apps`, in output order (the fake nvidia-smi accepts only this). */
export const COMPUTE_APPS_FIELDS = ["pid", "process_name", "used_memory", "gpu_uuid"] as const;

export const COMPUTE_APPS_ARGS = [
  `--query-compute-apps=${COMPUTE_APPS_FIELDS.join(",")}`,
  "--format=csv,noheader,nounits",
];

/** A process with a compute context on a GPU, as nvidia-smi lists it. */
export interface GpuProcess {
  pid: number;
  /** The executable as nvidia-smi prints it (often a full path). */
  name: string;
  /** MiB; null where the driver does not say ([N/A], e.g. inside containers). */
  usedMb: number | null;
  gpuUuid: string;
}

/**
 * The processes in `nvidia-smi --query-compute-apps=pid,process_name,used_memory,gpu_uuid
 * --format=csv,noheader,nounits` output. No processes: no output. A process name may
 * hold commas, so the pid is read from the front and memory and uuid from the back.
 */
export function parseComputeApps(text: string): GpuProcess[] {
  const processes: GpuProcess[] = [];
  for (const line of text.split(/\r?\n/)) {
    const raw = line.split(",");
    const fields = raw.map((f) => f.trim());
    if (fields.length < 4) continue;
    const pid = Number(fields[0]);
    const gpuUuid = fields[fields.length - 1] ?? "";
    const used = fields[fields.length - 2] ?? "";
    if (!Number.isInteger(pid) || pid <= 0 || !gpuUuid.startsWith("GPU-")) continue;
    processes.push({
      pid,
      name: raw.slice(1, -2).join(",").trim(),
      usedMb: /^\d+(\.\d+)?$/.test(used) ? Number(used) : null,
      gpuUuid,
    });
  }
  return processes;
}

/** A name for people: the executable's base name (`/usr/bin/blender` → `blender`). */
export function processLabel(process: Pick<GpuProcess, "name" | "pid">): string {
  const base = process.name.split(/[\\/]/).pop() ?? "";
  return base === "" || base === "[Not Found]" ? `pid ${process.pid}` : base;
}

/** Runs the query once; null when nvidia-smi cannot answer (the caller keeps its last view). Never rejects. */
export function queryGpuProcesses(options: { timeoutMs?: number; bin?: string } = {}): Promise<GpuProcess[] | null> {
  return new Promise((resolve) => {
    execFile(
      options.bin ?? "nvidia-smi",
      COMPUTE_APPS_ARGS,
      { timeout: options.timeoutMs ?? 2000, killSignal: "SIGKILL", encoding: "utf8", windowsHide: true },
      (error, stdout) => resolve(error ? null : parseComputeApps(stdout)),
    );
  });
}
