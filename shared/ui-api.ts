import { z } from "zod";
import { DeviceInfo } from "./device";
import { ErrorCode, FieldError } from "./errors";
import { normalizeFingerprint } from "./fingerprint";
import { MAX_INIT_IMAGE_BYTES, Sha256Hex } from "./img2img";
import { JobSource, JobSpec, StoredGridAxis } from "./job";
import { Fingerprint, ModelInfo } from "./node-info";
import { NodeToken } from "./pairing";

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
  grid: z.object({ x: StoredGridAxis, y: StoredGridAxis.optional() }).nullable(),
  /** Who queued it when not a person in the app (the A1111 API and its client); absent for the app's own jobs. */
  source: JobSource.optional(),
  /** What its stored images cost: joules, and how many of them had it measured (absent from older apps). */
  energy: z.object({ joules: z.number().nonnegative(), images: z.number().int().nonnegative() }).optional(),
  /** It asked for efficient devices (`--prefer efficient`). */
  preferEfficient: z.boolean().optional(),
  /** Its images went only to the client that asked (A1111's `save_images: false`) and are not kept: none in the gallery. */
  transient: z.boolean().optional(),
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

/** A push of a library pack to a node (issue 16), on demand or a person's, as the farm panel shows it. */
export const ModelPushSummary = z.object({
  model: z.string(),
  /** `cancelled`: a person stopped it; it is not started again until someone pushes it again. */
  state: z.enum(["pushing", "failed", "done", "cancelled"]),
  percent: z.number().min(0).max(100),
  bytesPerSecond: z.number().nonnegative(),
  /** Why a push failed, in words (the node's own answer where it gave one). */
  reason: z.string().nullable(),
});
export type ModelPushSummary = z.infer<typeof ModelPushSummary>;

/**
 * How one pack of the studio's model library stands on one node: the
 * comparison `kiln models` shows (present, missing, different, unavailable,
 * unreachable) with the node's push overlaid (pushing, refused, failed,
 * cancelled). One schema for `kiln models --json` and the farm panel.
 */
export const NodeModelStatus = z.discriminatedUnion("state", [
  /** Same name, same content hash. */
  z.object({ state: z.literal("present") }),
  z.object({ state: z.literal("missing") }),
  /** Same name, other bytes. */
  z.object({ state: z.literal("different"), nodeHash: z.string() }),
  /** The node has a folder of that name it cannot run (its own checks said why). */
  z.object({ state: z.literal("unavailable"), reason: z.string() }),
  z.object({ state: z.literal("unreachable"), reason: z.string() }),
  z.object({
    state: z.literal("pushing"),
    percent: z.number().min(0).max(100),
    bytesPerSecond: z.number().nonnegative().default(0),
  }),
  /** The node said no (pushes off, no room): not asked again until the pack changes or a person pushes it. */
  z.object({ state: z.literal("refused"), reason: z.string() }),
  /** The link failed mid-push: tried again later (the node keeps the bytes it has). */
  z.object({ state: z.literal("failed"), reason: z.string() }),
  /** A person cancelled the push (the node dropped what it had): not started again until a person pushes it. */
  z.object({ state: z.literal("cancelled") }),
]);
export type NodeModelStatus = z.infer<typeof NodeModelStatus>;

/** One library pack on one node, for the farm panel. */
export const NodeLibraryModel = z.object({ model: z.string(), status: NodeModelStatus });
export type NodeLibraryModel = z.infer<typeof NodeLibraryModel>;

/** A pack of the studio's model library as the UI lists it. */
export const LibraryModel = z.object({
  name: z.string(),
  /** sd, sdxl, flow; "unknown" when the folder says nothing readable. */
  kind: z.string(),
  /** Content hash; "" for a folder that is not a usable pack. */
  hash: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  /** What nodes will advertise for it once pushed (defaults, limits); null when it cannot be pushed. */
  info: ModelInfo.nullable(),
  /** Why the folder cannot be pushed, in words; null for a usable pack. */
  problem: z.string().nullable(),
});
export type LibraryModel = z.infer<typeof LibraryModel>;

/** The library settings a person chooses: `--models DIR` and `--no-push` of `kiln serve`, as the desktop app sets them. */
export const LibrarySettings = z.object({
  /** The library folder on the computer running the coordinator. */
  dir: z.string().trim().min(1, "choose the folder of your model packs").max(4096),
  /** Whether queued images' models are pushed to nodes that lack them (the on-demand pushes switch). */
  onDemand: z.boolean(),
});
export type LibrarySettings = z.infer<typeof LibrarySettings>;

/** The studio's model library as the UI shows it. */
export const ModelLibrary = z.object({
  /** The folder; null without a library (farm mode, or none configured). */
  dir: z.string().nullable(),
  onDemand: z.boolean(),
  /** Whether the UI may change the folder and the switch (the desktop app; `kiln serve` takes them from its flags). */
  changeable: z.boolean(),
  packs: z.array(LibraryModel),
});
export type ModelLibrary = z.infer<typeof ModelLibrary>;

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
  /** Every usable pack of the studio's library and how it stands on this node; absent without a library and for the embedded node. */
  library: z.array(NodeLibraryModel).optional(),
});
export type NodeSummary = z.infer<typeof NodeSummary>;

/** Base64 characters of the largest init image the store takes (4 per 3 bytes, padded). */
export const MAX_INIT_IMAGE_BASE64 = 4 * Math.ceil(MAX_INIT_IMAGE_BYTES / 3);

/**
 * A picture for the app's init image store: its bytes (PNG, JPEG or WebP, as
 * base64, so the same JSON crosses the WebSocket and the IPC bridge), or a
 * finished image of the gallery by its id (read where it is stored: the page
 * never sends back a picture the app already has).
 */
export const StoreInitImageArgs = z
  .object({
    data: z.base64("must be the picture's bytes in base64").max(MAX_INIT_IMAGE_BASE64, {
      message: `must be at most ${MAX_INIT_IMAGE_BYTES / (1024 * 1024)} MiB of picture`,
    }),
    imageId: z.string().min(1).max(100),
  })
  .partial()
  .refine((a) => (a.data === undefined) !== (a.imageId === undefined), {
    path: ["data"],
    message: "give the picture's bytes (data) or a gallery image's id (imageId), one of them",
  });
export type StoreInitImageArgs = z.infer<typeof StoreInitImageArgs>;

/** A stored init image (or mask): what a job names it by, and its size in pixels. */
export const StoredInitImage = z.object({
  sha256: Sha256Hex,
  width: z.number().int().positive(),
  height: z.number().int().positive(),
});
export type StoredInitImage = z.infer<typeof StoredInitImage>;

const JobRef = z.object({ jobId: z.string() });
const NodeRef = z.object({ nodeId: z.string() });
const NodeModelRef = NodeRef.extend({ model: z.string().min(1).max(256) });
const Ok = z.object({ ok: z.literal(true) });

/** Every command: its arguments and its result. Channel names are the keys, never loose strings. */
/** A node's address as a person types it: a host name or an IP address, the port in its own field. */
const NodeHost = z
  .string()
  .trim()
  .min(1, "must name the node's host")
  .max(253, "must be at most 253 characters (a DNS name's limit)")
  .refine((host) => !/^[^:]+:\d+$/.test(host), "holds a port: give the host alone, and the port in its own field")
  .refine((host) => /^[A-Za-z0-9.:%\-[\]]+$/.test(host), "must be a host name or an IP address");

export const UiCommands = {
  submitJob: { args: JobSpec, result: z.object({ jobId: z.string(), images: z.number().int() }) },
  /** One stored image again, exactly: its job's settings (init picture, mask, hires…) with its prompt and seed. */
  rerunImage: {
    args: z.object({ imageId: z.string().min(1).max(64) }),
    result: z.object({ jobId: z.string(), images: z.number().int() }),
  },
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
      host: NodeHost,
      port: z.number().int().min(1).max(65535),
      code: z.string().min(1).max(32),
    }),
    result: NodeSummary,
  },
  addNode: {
    args: z
      .object({
        host: NodeHost,
        port: z.number().int().min(1).max(65535),
        token: NodeToken,
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
  /** The studio's model library: folder, on-demand switch, packs. */
  modelLibrary: { args: z.object({}), result: ModelLibrary },
  /** Another library folder or switch (desktop app only; saved and applied at once; pushes in flight stop and resume later). */
  setModelLibrary: { args: LibrarySettings, result: ModelLibrary },
  /** Pushes a library pack to a node now, as `kiln models push NAME --node` does; forgets an earlier refusal or cancel. */
  pushModel: { args: NodeModelRef, result: Ok },
  /** Cancels a push in flight: the node drops what it received, and the pack is not pushed there again until a person asks. */
  cancelModelPush: { args: NodeModelRef, result: Ok },
  /** Puts a picture (an img2img init image, an inpainting mask) in the app's init image store; jobs name it by sha256. */
  storeInitImage: { args: StoreInitImageArgs, result: StoredInitImage },
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
  z.object({
    type: z.literal("image.done"),
    image: ImageSummary,
    /** Its job keeps no image (A1111's `save_images: false`): the gallery shows none, whatever it knows of the job. */
    transient: z.literal(true).optional(),
  }),
  z.object({ type: z.literal("image.failed"), image: ImageSummary }),
  z.object({
    type: z.literal("nodes.changed"),
    nodes: z.array(NodeSummary),
    /** The model library with the nodes (a scan or a settings change marks the nodes changed). */
    library: ModelLibrary.optional(),
  }),
  z.object({
    type: z.literal("telemetry"),
    nodeId: z.string(),
    devices: z.array(DeviceInfo),
    /** Per device uuid: this second's sample, to append to the history from the node list. */
    samples: z.record(z.string(), DeviceSample),
  }),
]);
export type UiEvent = z.infer<typeof UiEvent>;
