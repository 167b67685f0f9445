/** Plain-data farms for the scheduler's unit tests. Times: `now` in ms, speeds in seconds per image. */
import type { DeviceView, InflightTaskView, PendingImage } from "../../../../coordinator/scheduling/scheduler";
import { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import type { WorkKey } from "../../../../coordinator/scheduling/work-key";

export const W512: WorkKey = { model: "m", width: 512, height: 512, steps: 8 };
export const W1024: WorkKey = { model: "m", width: 1024, height: 1024, steps: 8 };

export function device(
  nodeId: string,
  uuid: string,
  overrides: Partial<Omit<DeviceView, "key" | "nodeId" | "uuid">> & { limit?: number } = {},
): DeviceView {
  const { limit = 8, ...rest } = overrides;
  return {
    key: `${nodeId}/${uuid}`,
    nodeId,
    uuid,
    models: ["m"],
    batchLimit: () => limit,
    inflight: [],
    maxInflight: 2,
    accepting: true,
    blockedModels: new Set(),
    share: 1,
    ...rest,
  };
}

export function images(count: number, work: WorkKey = W512, jobId = "job", from = 0): PendingImage[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${jobId}-${from + i}`, jobId, ...work }));
}

/** A model that has seen each device run `work` at the given seconds per image. */
export function learned(speeds: Record<string, number>, work: WorkKey = W512): ThroughputModel {
  const model = new ThroughputModel();
  for (const [key, seconds] of Object.entries(speeds)) model.observe(key, work, seconds);
  return model;
}

/** A task the device is running since `runningSince` ms (sent at the same time). */
export function running(
  taskId: string,
  imageIds: string[],
  runningSince: number,
  work: WorkKey = W512,
): InflightTaskView {
  return { taskId, imageIds, work, startedAt: runningSince, runningSince };
}
