import { type ExecFileException, execFile } from "node:child_process";
import { type DeviceReadings, READING_BOUNDS } from "../../shared/device";

/**
 * The columns asked of `nvidia-smi --query-gpu`, in output order. The parser and the
 * recorded fixtures depend on this exact order.
 */
export const NVIDIA_SMI_QUERY_FIELDS = [
  "index",
  "uuid",
  "name",
  "pci.bus_id",
  "memory.total",
  "memory.used",
  "utilization.gpu",
  "temperature.gpu",
  "power.draw",
] as const;

export const NVIDIA_SMI_ARGS = [`--query-gpu=${NVIDIA_SMI_QUERY_FIELDS.join(",")}`, "--format=csv,noheader,nounits"];

/** One GPU row of nvidia-smi's CSV. Memory is in MiB, reported under the `Mb` names the protocol uses. */
export interface NvidiaGpuReading extends DeviceReadings {
  /** nvidia-smi's (PCI bus order) index; informational, never an identity. */
  index: number;
  uuid: string;
  name: string;
  /** Normalised with {@link normalizePciBusId}, comparable with lost-GPU bus ids. */
  busId: string;
}

export type NvidiaSmiResult =
  | { ok: true; gpus: NvidiaGpuReading[]; lostBusIds: string[] }
  | { ok: false; reason: string };

export interface QueryNvidiaSmiOptions {
  /** A hung driver can block nvidia-smi for minutes; telemetry must not wait that long. */
  timeoutMs?: number;
  bin?: string;
}

const PCI_BUS_ID = /([0-9a-f]{1,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])/i;

/**
 * nvidia-smi prints the PCI domain with 8 digits in CSV (`00000000:3B:00.0`) but with 4
 * in its lost-GPU message (`0000:3B:00.0`); both become `0000:3B:00.0`.
 */
export function normalizePciBusId(text: string): string | null {
  const match = PCI_BUS_ID.exec(text);
  if (!match) return null;
  const [, domain = "", bus = "", device = "", fn = ""] = match;
  const shortDomain = Number.parseInt(domain, 16).toString(16).padStart(4, "0");
  return `${shortDomain}:${bus}:${device}.${fn}`.toUpperCase();
}

/**
 * A GPU nvidia-smi cannot open gets one line instead of its CSV row, on stdout, in one of
 * the forms real drivers print:
 *   Unable to determine the device handle for GPU 0000:02:00.0: GPU is lost.  Reboot the system to recover this GPU
 *   Unable to determine the device handle for GPU0000:07:00.0: Unknown Error
 *   Unable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error
 * Whatever the reason given, the GPU cannot be used until someone intervenes.
 */
const DEVICE_HANDLE_FAILURE = /Unable to determine the device handle for GPU/i;

/** NVML's marker for a value that disappeared mid-query because the GPU fell off the bus. */
const GPU_IS_LOST_VALUE = /^\[GPU is lost\]$/i;

interface CsvRow {
  fields: string[];
  busId: string | null;
}

function splitRows(text: string): CsvRow[] {
  const rows: CsvRow[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (DEVICE_HANDLE_FAILURE.test(line)) continue;
    const fields = line.split(",").map((field) => field.trim());
    if (fields.length !== NVIDIA_SMI_QUERY_FIELDS.length) continue;
    rows.push({ fields, busId: normalizePciBusId(fields[3] ?? "") });
  }
  return rows;
}

/** `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `N/A` and anything else non-numeric read as null. */
function parseNumber(field: string | undefined, max = Number.POSITIVE_INFINITY, min = 0): number | null {
  if (field === undefined || !/^-?\d+(\.\d+)?$/.test(field)) return null;
  const value = Number(field);
  return value >= min && value <= max ? value : null;
}

/** The GPUs in `nvidia-smi --query-gpu=<NVIDIA_SMI_QUERY_FIELDS> --format=csv,noheader,nounits` output. */
export function parseNvidiaSmiCsv(text: string): NvidiaGpuReading[] {
  const gpus: NvidiaGpuReading[] = [];
  for (const { fields, busId } of splitRows(text)) {
    if (fields.some((field) => GPU_IS_LOST_VALUE.test(field))) continue;
    const [index, uuid, name, , memoryTotal, memoryUsed, utilization, temperature, power] = fields;
    const gpuIndex = parseNumber(index);
    if (gpuIndex === null || !Number.isInteger(gpuIndex) || !uuid?.startsWith("GPU-") || busId === null) continue;
    gpus.push({
      index: gpuIndex,
      uuid,
      name: name ?? "",
      busId,
      // A reading past any real board is the driver's glitch: null, as a reading it cannot give (the protocol refuses it).
      vramTotalMb: parseNumber(memoryTotal, READING_BOUNDS.megabytes),
      vramUsedMb: parseNumber(memoryUsed, READING_BOUNDS.megabytes),
      utilizationPct: parseNumber(utilization, 100),
      temperatureC: parseNumber(temperature, READING_BOUNDS.celsius.max, READING_BOUNDS.celsius.min),
      powerW: parseNumber(power, READING_BOUNDS.watts),
    });
  }
  return gpus;
}

/** PCI bus ids of GPUs the output reports as unreachable (fallen off the bus, handle lost). */
export function parseLostGpuBusIds(text: string): string[] {
  const lost = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    if (!DEVICE_HANDLE_FAILURE.test(line)) continue;
    const busId = normalizePciBusId(line);
    if (busId !== null) lost.add(busId);
  }
  for (const { fields, busId } of splitRows(text)) {
    if (busId !== null && fields.some((field) => GPU_IS_LOST_VALUE.test(field))) lost.add(busId);
  }
  return [...lost];
}

/** nvidia-smi's answer (exit 6) on a machine whose driver is loaded but sees no GPU. */
const NO_DEVICES = /No devices were found/i;

function firstLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .find((line) => line.length > 0) ?? ""
  );
}

function describeOutcome(error: ExecFileException | null): string {
  if (typeof error?.code === "number") return `exited with code ${error.code}`;
  if (error?.signal) return `was killed by ${error.signal}`;
  return error ? error.message : "printed no GPU rows";
}

/**
 * Runs nvidia-smi once. Resolves, never rejects: a machine without NVIDIA drivers, a
 * driver that fails or a hung nvidia-smi are facts to report, not crashes. nvidia-smi
 * writes its errors to stdout and exits non-zero (15) when a GPU is lost while still
 * printing the healthy GPUs, so the output is read whatever the exit code.
 */
export function queryNvidiaSmi(options: QueryNvidiaSmiOptions = {}): Promise<NvidiaSmiResult> {
  const bin = options.bin ?? "nvidia-smi";
  const timeoutMs = options.timeoutMs ?? 2000;
  return new Promise((resolve) => {
    execFile(
      bin,
      NVIDIA_SMI_ARGS,
      { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", windowsHide: true },
      (error, stdout, stderr) => {
        const code = error?.code;
        if (code === "ENOENT") {
          resolve({ ok: false, reason: `${bin} not found (no NVIDIA driver installed, or not on PATH)` });
          return;
        }
        if (code === "EACCES") {
          resolve({ ok: false, reason: `${bin} cannot be run: permission denied` });
          return;
        }
        if (error?.killed) {
          resolve({ ok: false, reason: `${bin} did not answer within ${timeoutMs} ms (driver hung?)` });
          return;
        }
        const gpus = parseNvidiaSmiCsv(stdout);
        const lostBusIds = parseLostGpuBusIds(stdout);
        // A handle failure without a readable bus id still means "these are all the GPUs
        // left", so missing uuids can be marked lost.
        if (gpus.length > 0 || lostBusIds.length > 0 || DEVICE_HANDLE_FAILURE.test(stdout) || NO_DEVICES.test(stdout)) {
          resolve({ ok: true, gpus, lostBusIds });
          return;
        }
        const message = firstLine(stdout) || firstLine(stderr) || "no output";
        resolve({ ok: false, reason: `${bin} ${describeOutcome(error)}: ${message}` });
      },
    );
  });
}
