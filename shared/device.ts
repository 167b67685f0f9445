import { z } from "zod";
import { ModelBatchLimits } from "./batch-size";
import { MAX_CLIENTS_PER_DEVICE, MAX_DEVICES_PER_NODE } from "./constants";

/** Which engine really runs a device's inference. `sim` sleeps instead of computing. */
export const Backend = z.enum(["cuda", "webgpu", "cpu", "sim"]);
export type Backend = z.infer<typeof Backend>;

export const DeviceKind = z.enum(["nvidia", "cpu", "simulated"]);
export type DeviceKind = z.infer<typeof DeviceKind>;

/**
 * Bounds on what a node reports about its devices (every app keeps it in
 * memory and shows it): ids, names and lists, each with room to spare over
 * what a real node sends.
 */
const REPORTED_ID = z.string().min(1).max(128);
const LABEL = z.string().max(200);
const MAX_LOADED_MODELS = 64;
/**
 * Readings far past any real device (16 TiB of memory, 100 kW, 100,000 images a second): a node claiming more is
 * broken or hostile, and its report is refused rather than turned into Infinity in the farm panel's arithmetic.
 */
export const READING_BOUNDS = {
  megabytes: 2 ** 24,
  watts: 1e5,
  celsius: { min: -100, max: 250 },
  imagesPerSec: 1e5,
} as const;
const MEGABYTES = z.number().nonnegative().max(READING_BOUNDS.megabytes);
const WATTS = z.number().nonnegative().max(READING_BOUNDS.watts);
const COUNT = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** A device's problem in its worker's words: long enough for a provider's reasons, bounded as all a node says. */
export const MAX_PROBLEM_CHARS = 2000;

/** Live readings of one device; any reading a device cannot give is null. */
export const DeviceReadings = z.object({
  vramTotalMb: MEGABYTES.nullable(),
  vramUsedMb: MEGABYTES.nullable(),
  utilizationPct: z.number().min(0).max(100).nullable(),
  temperatureC: z.number().min(READING_BOUNDS.celsius.min).max(READING_BOUNDS.celsius.max).nullable(),
  powerW: WATTS.nullable(),
});
export type DeviceReadings = z.infer<typeof DeviceReadings>;

/** `yielded`: stepped aside for its owner's programs or hours (see DeviceYield); it takes no work, nothing of it failed. */
export const DeviceState = z.enum(["starting", "ready", "busy", "restarting", "lost", "yielded"]);
export type DeviceState = z.infer<typeof DeviceState>;

/** One paired studio app as a shared device sees it. */
export const DeviceClientShare = z.object({
  /** The app's id on this node (stable per pairing), not its display name. */
  client: REPORTED_ID,
  name: LABEL,
  /** Its weight in the device's fair queue (1 unless set on the node). */
  weight: z.number().positive().max(1e6),
  /** Its fraction of the device's busy time over the sharing window. */
  share: z.number().min(0).max(1),
  /** Its tasks waiting in or running on this device now. */
  tasks: COUNT,
});
export type DeviceClientShare = z.infer<typeof DeviceClientShare>;

/** Who a device works for: several studio apps share a node by weighted fair queuing. */
export const DeviceSharing = z.object({
  /** The app whose batch is rendering now; null when idle. */
  current: REPORTED_ID.nullable(),
  /** Seconds of history behind `share`. */
  windowS: z.number().positive().max(1e7),
  clients: z.array(DeviceClientShare).max(MAX_CLIENTS_PER_DEVICE),
});
export type DeviceSharing = z.infer<typeof DeviceSharing>;

/**
 * What a device's power draw added up to since its node started: from nvidia-smi's
 * power.draw, from RAPL's energy counter (a CPU device, where readable), or from the
 * simulated device's model. A device nothing measures reports null, never a guess.
 */
export const DeviceEnergy = z.object({
  source: z.enum(["nvidia-smi", "rapl", "simulated"]),
  /** Everything the device drew since the node started, idle included, joules. */
  totalJ: z.number().nonnegative().max(1e15),
  /** Of that, what was charged to images (draw above idle while they rendered), joules. */
  imagesJ: z.number().nonnegative().max(1e15),
  /** Images charged. */
  images: COUNT,
  /** Watt-hours per image over its recent images; null before its first. */
  whPerImage: z.number().nonnegative().max(1e6).nullable(),
  /** The idle draw it is measured against (see farm-node/devices/idle-power.ts); null before one is known. */
  idlePowerW: WATTS.nullable(),
});
export type DeviceEnergy = z.infer<typeof DeviceEnergy>;

/** Why a device stepped aside for its owner (a node started with --yield auto or --hours). */
export const DeviceYield = z.object({
  /** For people, after "yielded: " (e.g. "the owner is using this GPU"). */
  reason: LABEL,
  /** The other program, where one is known (its executable's name). */
  process: LABEL.nullable(),
  since: z.string().max(64),
  /** When it takes work again, once the other program is gone; null while it is there. */
  resumesAt: z.string().max(64).nullable(),
});
export type DeviceYield = z.infer<typeof DeviceYield>;

export const DeviceInfo = DeviceReadings.extend({
  /** Stable identity: the GPU uuid from nvidia-smi, or a uuid derived from the node id. */
  uuid: REPORTED_ID,
  /** Position in nvidia-smi's list; informational only, never an identity. */
  index: z.number().int().nonnegative(),
  name: LABEL,
  kind: DeviceKind,
  simulated: z.boolean(),
  /** The backend the worker actually runs on (null until its worker has started). */
  backend: Backend.nullable(),
  state: DeviceState,
  queueDepth: COUNT,
  queueLimit: z.number().int().positive().max(1e6),
  currentTaskId: REPORTED_ID.nullable(),
  imagesTotal: COUNT,
  /** Images per second over the last minute. */
  imagesPerSec: z.number().nonnegative().max(READING_BOUNDS.imagesPerSec),
  /** Model packs its worker holds in memory now (the built-in demo is not listed). */
  loadedModels: z.array(LABEL).max(MAX_LOADED_MODELS).default([]),
  sharing: DeviceSharing.default({ current: null, windowS: 300, clients: [] }),
  /** Per model: the largest batch that fits at 512², 768² and 1024²; absent where the device reports no memory. */
  batchLimits: z.array(ModelBatchLimits).max(MAX_LOADED_MODELS).optional(),
  /** Set while the device is yielded to its owner. */
  yielded: DeviceYield.nullable().optional(),
  /**
   * Why the device takes no work while its worker cannot start (no execution provider could run the model,
   * say), in the worker's words; null once a worker is ready, absent from older nodes.
   */
  problem: z.string().min(1).max(MAX_PROBLEM_CHARS).nullable().optional(),
  /** Energy measured on it; null (or absent, from older nodes) where nothing measures its draw. */
  energy: DeviceEnergy.nullable().optional(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

/** Every device of one node, as its telemetry, its /v1/node and its farm report list them. */
export const NodeDevices = z.array(DeviceInfo).max(MAX_DEVICES_PER_NODE);
