import { NodeMessage } from "../../shared/errors";
import { FARM_CANCELLED_REASON, parseFarmFailedReason } from "../../shared/farm-protocol";
import type { NodeEvent } from "../../shared/node-events";

/** A task's end as the app's result intake takes it, without the fields its link adds. */
export type TaskEnd =
  | { type: "task.done"; taskId: string }
  | { type: "task.cancelled"; taskId: string }
  | Pick<
      Extract<NodeEvent, { type: "task.failed" }>,
      "type" | "taskId" | "code" | "message" | "retriable" | "completedImageIds"
    >;

/**
 * The end of a farm task whose node never announced it (killed between settling the task in BullMQ and writing to
 * the app's stream), read from BullMQ's record of it: the app's images would otherwise stay running for ever. Null
 * while BullMQ holds the task as not ended. A failed task's reason is read as farm nodes word it (farmFailedReason).
 */
export function unannouncedEnd(taskId: string, state: string, failedReason: string | undefined): TaskEnd | null {
  switch (state) {
    case "completed":
      // Every image it delivered was announced first: the intake fails the others, and they are rendered again.
      return { type: "task.done", taskId };
    case "failed": {
      if (failedReason === FARM_CANCELLED_REASON) return { type: "task.cancelled", taskId };
      const failure = parseFarmFailedReason(failedReason ?? "");
      return {
        type: "task.failed",
        taskId,
        code: failure?.code ?? "E_INTERNAL",
        // Any box that reaches Redis may have written it: cut as a node's words are.
        message: NodeMessage.parse(failure?.message ?? (failedReason || "the task failed on the farm")),
        retriable: failure?.retriable ?? false,
        completedImageIds: [],
      };
    }
    case "unknown":
      // Gone from BullMQ (its record expired): nothing says how it ended, so its images are tried again.
      return {
        type: "task.failed",
        taskId,
        code: "E_INTERNAL",
        message: "the farm no longer knows this task, and no node announced its end",
        retriable: true,
        completedImageIds: [],
      };
    default:
      return null;
  }
}
