import { z } from "zod";
import { NODE_API_PREFIX } from "./constants";
import { NodeDevices } from "./device";
import { ErrorCode } from "./errors";
import { SafeId } from "./ids";
import { CompletedImageIds, NodeMessage } from "./node-events";
import { Fingerprint, ModelInfo } from "./node-info";
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
 */
export const FARM_KEY_PREFIX = "kiln";

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

/** What an app puts on its queue: the LAN task, and who sent it. */
export const FarmJob = z.object({
  app: z.string().uuid(),
  task: TaskRequest,
});
export type FarmJob = z.infer<typeof FarmJob>;

/**
 * Where apps fetch a node's PNGs: an https origin and nothing more (no user,
 * path, query or fragment). Whoever writes to Redis writes this, so it may
 * only ever point apps at a TLS server holding the reported certificate, and
 * the path is always the app's own ({@link farmImagePath}).
 */
export const FarmNodeUrl = z
  .string()
  .max(2048)
  .refine(isHttpsOrigin, "must be https://HOST:PORT, with no user, password, path, query or fragment");

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
  models: z.array(ModelInfo),
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
