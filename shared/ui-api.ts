import { z } from "zod";
import { DeviceInfo } from "./device";
import { ErrorCode, FieldError } from "./errors";
import { normalizeFingerprint } from "./fingerprint";
import { GridAxis, JobSource, JobSpec } from "./job";
import { Fingerprint, ModelInfo } from "./node-info";

/**
 * The one contract between user interfaces (desktop renderer, browser, CLI) and
 * the coordinator. Served over WebSocket by `kiln serve` and bridged over IPC by
 * the desktop shell; both validate every message with these schemas.
 */

export const JobState = z.enum(["queued", "running", "paused", "done", "failed", "cancelled"]);
export type JobState = z.infer<typeof JobState>;

export const JobSummary = z.object({
  id: z.string(),
  name: z.string(),
  state: JobState,
  priority: z.number().int(),
  position: z.number().int(),
  model: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  counts: z.object({
    total: z.number().int(),
    queued: z.number().int(),
    running: z.number().int(),
    done: z.number().int(),
    failed: z.number().int(),
    cancelled: z.number().int(),
  }),
  /** Seconds until the last image is expected, or null when unknown. */
  etaS: z.number().nullable(),
  /** Device uuids working on the job now. */
  devices: z.array(z.string()),
  lastError: z.string().nullable(),
  /** Why nothing can run the job's remaining images right now (no device has the model, all blocklisted…). */
  stalled: z.string().nullable(),
  /** The job's X/Y grid as submitted, or null for a plain job. */
  grid: z.object({ x: GridAxis, y: GridAxis.optional() }).nullable(),
  /** Who queued it when not a person in the app (the A1111 API and its client); absent for the app's own jobs. */
  source: JobSource.optional(),
});
export type JobSummary = z.infer<typeof JobSummary>;

export const ImageSummary = z.object({
  id: z.string(),
  jobId: z.string(),
  index: z.number().int(),
  state: z.enum(["queued", "running", "done", "failed", "cancelled"]),
  prompt: z.string(),
  negativePrompt: z.string(),
  seed: z.number().int(),
  model: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  steps: z.number().int(),
  guidance: z.number(),
  /** The sampler the job asked for, or null for the model's default. */
  sampler: z.string().nullable(),
  gridX: z.number().int().nullable(),
  gridY: z.number().int().nullable(),
  path: z.string().nullable(),
  nodeId: z.string().nullable(),
  device: z.string().nullable(),
  error: z.string().nullable(),
});
export type ImageSummary = z.infer<typeof ImageSummary>;

/** One sample of a device's history, for sparklines. */
export const DeviceSample = z.object({
  at: z.number(),
  imagesPerMin: z.number(),
  utilizationPct: z.number().nullable(),
});
export type DeviceSample = z.infer<typeof DeviceSample>;

/** Samples of history kept per device: 5 minutes at the nodes' 1 Hz. */
export const HISTORY_SAMPLES = 300;

export const NodeStatus = z.enum(["online", "lost", "draining", "unpaired", "conflict", "identity-changed", "pairing"]);
export type NodeStatus = z.infer<typeof NodeStatus>;

/** An on-demand push of a library pack to a node (issue 16, item 2), as the farm panel shows it. */
export const ModelPushSummary = z.object({
  model: z.string(),
  state: z.enum(["pushing", "failed", "done"]),
  percent: z.number().min(0).max(100),
  bytesPerSecond: z.number().nonnegative(),
  /** Why a push failed, in words (the node's own answer where it gave one). */
  reason: z.string().nullable(),
});
export type ModelPushSummary = z.infer<typeof ModelPushSummary>;

export const NodeSummary = z.object({
  id: z.string(),
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  status: NodeStatus,
  version: z.string().nullable(),
  local: z.boolean(),
  drained: z.boolean(),
  devices: z.array(DeviceInfo),
  /** This app's client id on the node, to tell its own work from other studio apps' in `devices[].sharing`. */
  you: z.string().nullable().default(null),
  models: z.array(ModelInfo),
  /** Why the node is not usable, in words (conflict, identity, errors). */
  problem: z.string().nullable(),
  /** SHA-256 of the node's certificate: the pinned one when paired, the advertised one when found. */
  fingerprint: z.string().nullable(),
  blockedModels: z.array(z.string()),
  /** Per device uuid: samples of the last 5 minutes, oldest first. Sent with the node list, not every second. */
  history: z.record(z.string(), z.array(DeviceSample)),
  /** On-demand pushes of library packs to this node: in flight, failed (with why) or done. */
  pushes: z.array(ModelPushSummary).optional(),
  /** Models the node lists with other bytes than the studio library's: it takes no work for them. */
  differentModels: z.array(z.string()).optional(),
});
export type NodeSummary = z.infer<typeof NodeSummary>;

const JobRef = z.object({ jobId: z.string() });
const NodeRef = z.object({ nodeId: z.string() });
const Ok = z.object({ ok: z.literal(true) });

/** Every command: its arguments and its result. Channel names are the keys, never loose strings. */
export const UiCommands = {
  submitJob: { args: JobSpec, result: z.object({ jobId: z.string(), images: z.number().int() }) },
  cancelJob: { args: JobRef, result: Ok },
  pauseJob: { args: JobRef, result: Ok },
  resumeJob: { args: JobRef, result: Ok },
  retryFailed: { args: JobRef, result: z.object({ requeued: z.number().int() }) },
  reorderJob: { args: JobRef.extend({ position: z.number().int().nonnegative() }), result: Ok },
  setPriority: { args: JobRef.extend({ priority: z.number().int().min(-100).max(100) }), result: Ok },
  pauseQueue: { args: z.object({}), result: Ok },
  resumeQueue: { args: z.object({}), result: Ok },
  /** Whether the whole queue is paused (no new work starts anywhere). */
  queueState: {
    args: z.object({}),
    /** `reason` says why the coordinator paused it (a full disk); null when a person did. */
    result: z.object({ paused: z.boolean(), reason: z.string().nullable() }),
  },
  /** LAN mode (paired nodes) or farm mode (a shared queue on Redis), and which farm. */
  appMode: {
    args: z.object({}),
    result: z.object({ mode: z.enum(["lan", "farm"]), farm: z.string().nullable() }),
  },
  listJobs: { args: z.object({ includeFinished: z.boolean().default(true) }), result: z.array(JobSummary) },
  jobImages: { args: JobRef, result: z.array(ImageSummary) },
  listNodes: { args: z.object({}), result: z.array(NodeSummary) },
  pairNode: {
    args: z.object({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      code: z.string().min(1).max(32),
    }),
    result: NodeSummary,
  },
  addNode: {
    args: z
      .object({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535),
        token: z.string().min(1),
        /** The node's certificate SHA-256 as it prints it at start: the token goes to that certificate only. */
        fingerprint: z.string().max(200).transform(normalizeFingerprint).pipe(Fingerprint).optional(),
        /** Pin whatever certificate answers now instead (a person's explicit choice). */
        trustFirstUse: z.boolean().default(false),
      })
      .refine((a) => a.fingerprint !== undefined || a.trustFirstUse, {
        path: ["fingerprint"],
        message:
          "give the node's certificate SHA-256 (kiln-node prints it at start), or choose to trust the certificate it presents now",
      }),
    result: NodeSummary,
  },
  drainNode: { args: NodeRef.extend({ drained: z.boolean() }), result: Ok },
  removeNode: { args: NodeRef, result: Ok },
  clearBlocklist: { args: NodeRef.extend({ model: z.string().optional() }), result: Ok },
} as const;
export type UiCommandName = keyof typeof UiCommands;
export type UiArgs<C extends UiCommandName> = z.input<(typeof UiCommands)[C]["args"]>;
export type UiResult<C extends UiCommandName> = z.output<(typeof UiCommands)[C]["result"]>;

export const UiRequest = z.object({
  id: z.number().int().nonnegative(),
  command: z.enum(Object.keys(UiCommands) as [UiCommandName, ...UiCommandName[]]),
  /** Commands without arguments may leave this out. */
  args: z.unknown().optional(),
});
export type UiRequest = z.infer<typeof UiRequest>;

export const UiErrorBody = z.object({
  code: ErrorCode,
  message: z.string(),
  fields: z.array(FieldError).optional(),
});
export type UiErrorBody = z.infer<typeof UiErrorBody>;

export const UiResponse = z.union([
  z.object({ id: z.number().int(), result: z.unknown() }),
  z.object({ id: z.number().int(), error: UiErrorBody }),
]);
export type UiResponse = z.infer<typeof UiResponse>;

export const UiEvent = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("queue.changed"),
    jobs: z.array(JobSummary),
    /** Whether the whole queue is paused (pauseQueue, or the coordinator after a full disk). */
    queuePaused: z.boolean(),
    /** Why the coordinator paused it, in words; absent or null when a person did. */
    pauseReason: z.string().nullable().optional(),
  }),
  z.object({
    type: z.literal("image.progress"),
    jobId: z.string(),
    imageId: z.string(),
    step: z.number().int(),
    steps: z.number().int(),
    device: z.string(),
  }),
  z.object({ type: z.literal("image.done"), image: ImageSummary }),
  z.object({ type: z.literal("image.failed"), image: ImageSummary }),
  z.object({ type: z.literal("nodes.changed"), nodes: z.array(NodeSummary) }),
  z.object({
    type: z.literal("telemetry"),
    nodeId: z.string(),
    devices: z.array(DeviceInfo),
    /** Per device uuid: this second's sample, to append to the history from the node list. */
    samples: z.record(z.string(), DeviceSample),
  }),
]);
export type UiEvent = z.infer<typeof UiEvent>;
