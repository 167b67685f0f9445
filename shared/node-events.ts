import { z } from "zod";
import { MAX_IMAGES_PER_TASK } from "./constants";
import { NodeDevices } from "./device";
import { ErrorCode, NodeMessage } from "./errors";
import { SafeId } from "./ids";
import { ImageEnergy } from "./image-energy";
import { ImageTimings } from "./task";

/** Bounds on what a node says, with room to spare over what a real node sends. */
const REPORTED_ID = z.string().max(128);

/** The images of a task a node reports as completed. */
export const CompletedImageIds = z.array(SafeId).max(MAX_IMAGES_PER_TASK);

const base = {
  /** Per-connection sequence number, so a client can see a gap. */
  seq: z.number().int().nonnegative(),
  at: z.string().max(64),
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
  nodeId: REPORTED_ID,
  devices: NodeDevices,
});

export const TaskAcceptedEvent = z.object({
  ...base,
  type: z.literal("task.accepted"),
  taskId: SafeId,
  device: REPORTED_ID,
});

export const TaskStartedEvent = z.object({
  ...base,
  type: z.literal("task.started"),
  taskId: SafeId,
  device: REPORTED_ID,
  backend: REPORTED_ID,
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
  url: z.string().max(2048),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().positive(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  seed: z.number().int().nonnegative(),
  device: REPORTED_ID,
  timings: ImageTimings,
  /** Its share of its batch's energy above idle; absent or null where the node measures none. */
  energy: ImageEnergy.nullable().optional(),
});

export const TaskDoneEvent = z.object({
  ...base,
  type: z.literal("task.done"),
  taskId: SafeId,
  device: REPORTED_ID,
});

export const TaskFailedEvent = z.object({
  ...base,
  type: z.literal("task.failed"),
  taskId: SafeId,
  device: REPORTED_ID,
  code: ErrorCode,
  message: NodeMessage,
  /** True when the same work may succeed if sent again (here or elsewhere). */
  retriable: z.boolean(),
  /** Images of the task that had already completed before the failure. */
  completedImageIds: CompletedImageIds,
});

export const TaskCancelledEvent = z.object({
  ...base,
  type: z.literal("task.cancelled"),
  taskId: SafeId,
  device: REPORTED_ID,
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
