import { z } from "zod";
import { DeviceInfo } from "./device";
import { ErrorCode } from "./errors";
import { SafeId } from "./ids";
import { ImageTimings } from "./task";

const base = {
  /** Per-connection sequence number, so a client can see a gap. */
  seq: z.number().int().nonnegative(),
  at: z.string(),
  /**
   * Outcome events (image ready, task done, failed or cancelled) carry their
   * number in the client's outbox on the node: kept on the node's disk and sent
   * again on every reconnect until the client acknowledges it with a NodeAck.
   */
  delivery: z.number().int().positive().optional(),
};

export const TelemetryEvent = z.object({
  ...base,
  type: z.literal("telemetry"),
  nodeId: z.string(),
  devices: z.array(DeviceInfo),
});

export const TaskAcceptedEvent = z.object({
  ...base,
  type: z.literal("task.accepted"),
  taskId: SafeId,
  device: z.string(),
});

export const TaskStartedEvent = z.object({
  ...base,
  type: z.literal("task.started"),
  taskId: SafeId,
  device: z.string(),
  backend: z.string(),
});

export const TaskProgressEvent = z.object({
  ...base,
  type: z.literal("task.progress"),
  taskId: SafeId,
  imageId: SafeId,
  step: z.number().int().nonnegative(),
  steps: z.number().int().positive(),
});

export const ImageReadyEvent = z.object({
  ...base,
  type: z.literal("image.ready"),
  taskId: SafeId,
  imageId: SafeId,
  url: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().positive(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  seed: z.number().int().nonnegative(),
  device: z.string(),
  timings: ImageTimings,
});

export const TaskDoneEvent = z.object({
  ...base,
  type: z.literal("task.done"),
  taskId: SafeId,
  device: z.string(),
});

export const TaskFailedEvent = z.object({
  ...base,
  type: z.literal("task.failed"),
  taskId: SafeId,
  device: z.string(),
  code: ErrorCode,
  message: z.string(),
  /** True when the same work may succeed if sent again (here or elsewhere). */
  retriable: z.boolean(),
  /** Images of the task that had already completed before the failure. */
  completedImageIds: z.array(SafeId),
});

export const TaskCancelledEvent = z.object({
  ...base,
  type: z.literal("task.cancelled"),
  taskId: SafeId,
  device: z.string(),
});

export const NodeEvent = z.discriminatedUnion("type", [
  TelemetryEvent,
  TaskAcceptedEvent,
  TaskStartedEvent,
  TaskProgressEvent,
  ImageReadyEvent,
  TaskDoneEvent,
  TaskFailedEvent,
  TaskCancelledEvent,
]);
export type NodeEvent = z.infer<typeof NodeEvent>;
export type NodeEventType = NodeEvent["type"];

/** The events a node keeps in a client's outbox until acknowledged. */
export const OUTCOME_EVENTS: ReadonlySet<NodeEventType> = new Set([
  "image.ready",
  "task.done",
  "task.failed",
  "task.cancelled",
]);

/**
 * What a client sends back on the event socket: the outcome numbered
 * `delivery` was taken (200), or refused because that work is no longer
 * assigned to this node (409: the node drops it and stops the task).
 */
export const NodeAck = z.object({
  type: z.literal("ack"),
  delivery: z.number().int().positive(),
  status: z.union([z.literal(200), z.literal(409)]),
  reason: z.string().max(500).optional(),
});
export type NodeAck = z.infer<typeof NodeAck>;

/** An event before the connection stamps its sequence number. */
export type NodeEventBody = NodeEvent extends infer E ? (E extends NodeEvent ? Omit<E, "seq"> : never) : never;
