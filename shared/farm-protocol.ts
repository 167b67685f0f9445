import { z } from "zod";
import { NODE_API_PREFIX } from "./constants";
import { NodeDevices } from "./device";
import { ErrorCode, NodeMessage } from "./errors";
import { SafeId } from "./ids";
import { ImageEnergy } from "./image-energy";
import { PushPackName, Sha256Hex } from "./model-push";
import { CompletedImageIds } from "./node-events";
import { Fingerprint, MAX_MODELS_PER_NODE, ModelInfo } from "./node-info";
import { ImageTimings, TaskRequest } from "./task";

/**
 * Farm mode: studio apps and nodes meet on one Redis server instead of over
 * the LAN. Every key lives under KEY_PREFIX:
 * - `apps` (hash): app id → FarmApp, written by each app when it starts;
 * - `nodes` (hash): node id → FarmNodeReport, written by each node every second;
 * - BullMQ queue `app-<app id>`: the app's tasks, FarmJob each, pulled by every
 *   device of every node (fair turns between the apps' queues);
 * - stream `app-<app id>:events`: FarmAnnouncement entries for that app only,
 *   read through a consumer group so an outcome is acknowledged once handled;
 * - `cancel:<task id>`: set while an app wants a running task stopped.
 *
 * Model packs (issue 16, item 5): a task for a library pack names it
 * ({@link FarmPackSource}); a node that lacks it fetches it from the app that
 * queued the task, over the app's own TLS (pinned by the fingerprint in the
 * task) with the pack's key, and stages it as a push (checked, resumed, linked).
 */
export const FARM_KEY_PREFIX = "kiln";

/** The reason a farm node gives BullMQ for a task its app cancelled (the app reads it back when no node announced the end). */
export const FARM_CANCELLED_REASON = "cancelled by its app";

/** How a farm node words a task's failure for BullMQ: `CODE: message`, `CODE (retriable): message` when another try may work. */
export function farmFailedReason(code: ErrorCode, message: string, retriable = false): string {
  return `${code}${retriable ? " (retriable)" : ""}: ${message}`;
}

/** A failure worded by farmFailedReason, read back; null for any other wording (BullMQ's own, an older node's). */
export function parseFarmFailedReason(reason: string): { code: ErrorCode; message: string; retriable: boolean } | null {
  const match = /^(E_[A-Z_]+)( \(retriable\))?: ([\s\S]*)$/.exec(reason);
  const code = ErrorCode.safeParse(match?.[1]);
  if (!match || !code.success) return null;
  return { code: code.data, message: match[3] ?? "", retriable: match[2] !== undefined };
}

/** A node's report older than this says it is gone: apps stop showing it, nodes stop counting on it. */
export const FARM_REPORT_STALE_MS = 5_000;

export const farmKeys = {
  apps: `${FARM_KEY_PREFIX}:apps`,
  nodes: `${FARM_KEY_PREFIX}:nodes`,
  /** BullMQ queue name; BullMQ puts it under its own `bull:` prefix. */
  queue: (app: string) => `${FARM_KEY_PREFIX}-app-${app}`,
  events: (app: string) => `${FARM_KEY_PREFIX}:app-${app}:events`,
  cancel: (taskId: string) => `${FARM_KEY_PREFIX}:cancel:${taskId}`,
} as const;

/** A studio app using the farm. */
export const FarmApp = z.object({
  id: z.string().uuid(),
  name: z.string().min(1).max(100),
  /** Its weight in every node's fair turns (1 unless a farm admin sets another). */
  weight: z.number().positive().max(100),
});
export type FarmApp = z.infer<typeof FarmApp>;

/**
 * An https origin and nothing more (no user, path, query or fragment): where
 * apps fetch a node's PNGs, and where nodes fetch an app's packs. Whoever
 * writes to Redis writes these, so they may only ever point at a TLS server
 * holding the pinned certificate, and the path is always the fetcher's own
 * ({@link farmImagePath}, {@link farmPackPath}).
 */
export const FarmOrigin = z
  .string()
  .max(2048)
  .refine(isHttpsOrigin, "must be https://HOST:PORT, with no user, password, path, query or fragment");

/** Where apps fetch a node's PNGs. */
export const FarmNodeUrl = FarmOrigin;

/**
 * A library pack a task renders with, and where a node that lacks it fetches
 * it: the app that queued the task serves its library over its own TLS.
 */
export const FarmPackSource = z.object({
  name: PushPackName,
  /** The pack's content hash (shared/pack-files.ts): the node installs these bytes and no others. */
  hash: Sha256Hex,
  /** The app's library server. */
  url: FarmOrigin,
  /** SHA-256 of the certificate the app's library server presents: the node sends nothing to any other. */
  fingerprint: Fingerprint,
  /** Lets its holder fetch this one pack: an HMAC of its hash under a secret in the app's data dir. */
  key: Sha256Hex,
});
export type FarmPackSource = z.infer<typeof FarmPackSource>;

/** What an app puts on its queue: the LAN task, who sent it, and the pack it needs when it is the library's. */
export const FarmJob = z.object({
  app: z.string().uuid(),
  task: TaskRequest,
  pack: FarmPackSource.optional(),
  /** Nodes that have no device with memory for one image of the task: once every node says so, it fails. */
  tooLargeFor: z.array(z.string().uuid()).max(10_000).optional(),
});
export type FarmJob = z.infer<typeof FarmJob>;

/** Largest pack description (PackOffer JSON) a node reads from an app: 4,096 files with long paths fit. */
export const MAX_FARM_PACK_OFFER_BYTES = 8 * 2 ** 20;

/** The app library server's two routes, as its router matches them. */
export const FARM_PACK_ROUTES = {
  pack: `${NODE_API_PREFIX}/farm/packs/:hash`,
  file: `${NODE_API_PREFIX}/farm/packs/:hash/files/:index`,
} as const;

/**
 * The app's route for a pack's description (a PackOffer: name, hash, files
 * with sizes and sha256), to whoever holds the pack's key (`?key=`).
 */
export function farmPackPath(hash: string): string {
  return `${NODE_API_PREFIX}/farm/packs/${Sha256Hex.parse(hash)}`;
}

/** The app's route for file `index` of a pack's description; `Range: bytes=FROM-TO` reads part of it. */
export function farmPackFilePath(hash: string, index: number): string {
  return `${farmPackPath(hash)}/files/${z.number().int().min(0).parse(index)}`;
}

/** A pack a farm node is fetching from an app, or fetched, or could not (and why), as its report shows it. */
export const FarmPackFetch = z.object({
  model: z.string().max(128),
  hash: Sha256Hex,
  state: z.enum(["fetching", "done", "failed"]),
  percent: z.number().min(0).max(100),
  bytesPerSecond: z.number().nonnegative(),
  code: ErrorCode.nullable(),
  reason: z.string().max(2000).nullable(),
});
export type FarmPackFetch = z.infer<typeof FarmPackFetch>;

function isHttpsOrigin(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  return (
    url.protocol === "https:" &&
    url.username === "" &&
    url.password === "" &&
    url.pathname === "/" &&
    url.search === "" &&
    url.hash === ""
  );
}

/** The route a farm node serves an announced PNG on, to whoever holds the image's key. */
export function farmImagePath(imageId: string): string {
  return `${NODE_API_PREFIX}/farm/images/${encodeURIComponent(SafeId.parse(imageId))}`;
}

/** A node's telemetry and identity, refreshed every second; stale entries mean a node is gone. */
export const FarmNodeReport = z.object({
  id: z.string().uuid(),
  name: z.string().max(200),
  version: z.string().max(64),
  url: FarmNodeUrl,
  /**
   * The node's certificate (PEM) and its SHA-256: apps pin it when they fetch,
   * and ignore a report whose certificate does not hash to its fingerprint.
   */
  certPem: z.string().max(16_384),
  fingerprint: Fingerprint,
  devices: NodeDevices,
  models: z.array(ModelInfo).max(MAX_MODELS_PER_NODE),
  /** Packs fetched from apps since the node started: under way, done, or failed with why. */
  fetches: z.array(FarmPackFetch).max(64).optional(),
  /** Epoch ms of this report. */
  at: z.number(),
});
export type FarmNodeReport = z.infer<typeof FarmNodeReport>;

const announced = {
  taskId: SafeId,
  nodeId: z.string().uuid(),
  device: z.string().max(128),
  at: z.string().max(64),
};

/** Outcomes an app learns from its stream, in the order nodes wrote them. */
export const FarmAnnouncement = z.discriminatedUnion("type", [
  z.object({
    ...announced,
    type: z.literal("image.ready"),
    imageId: SafeId,
    /**
     * Ignored: apps fetch from the node's reported origin at {@link farmImagePath},
     * never from a path a Redis entry names. Nodes still send it for apps of
     * earlier versions, which need it.
     */
    url: z.string().max(2048).optional(),
    /** Lets its holder fetch this one image (an HMAC of the id under the node's secret). */
    key: z.string().regex(/^[0-9a-f]{64}$/),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.number().int().positive(),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    seed: z.number().int().nonnegative(),
    timings: ImageTimings,
    /** Its share of its batch's energy above idle; absent where the node measures none. */
    energy: ImageEnergy.nullable().optional(),
  }),
  z.object({ ...announced, type: z.literal("task.done") }),
  z.object({
    ...announced,
    type: z.literal("task.failed"),
    code: ErrorCode,
    message: NodeMessage,
    /** False once BullMQ has no attempts left, or the error is one no retry can fix. */
    retriable: z.boolean(),
    completedImageIds: CompletedImageIds,
  }),
  z.object({ ...announced, type: z.literal("task.cancelled") }),
]);
export type FarmAnnouncement = z.infer<typeof FarmAnnouncement>;

/** A Redis URL without its password, for logs and screens. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "redis://…";
  }
}

/** A value read from Redis, checked against its schema: anything that is not valid JSON fails the same way a bad field does. */
export function parseFarmJson<T extends z.ZodType>(schema: T, text: string): ReturnType<T["safeParse"]> {
  let value: unknown = null;
  try {
    value = JSON.parse(text);
  } catch {
    // Reported by the schema below as a value of the wrong type.
  }
  return schema.safeParse(value) as ReturnType<T["safeParse"]>;
}
