import { beforeEach, describe, expect, it } from "vitest";
import { applyEvents } from "../../../renderer/api/apply-events";
import { createEventBatcher, MAX_BUFFERED_IMAGES } from "../../../renderer/api/event-batcher";
import { applyNodes, initialFarmState, useFarmStore } from "../../../renderer/stores/farm-store";
import { noFilters, useGalleryStore } from "../../../renderer/stores/gallery-store";
import { applyJobList, initialQueueState, useQueueStore } from "../../../renderer/stores/queue-store";
import type { UiEvent } from "../../../shared/ui-api";
import { device, image, job, node } from "./ui-fixtures";

/** A frame scheduler the test advances by hand (requestAnimationFrame in the page). */
function manualFrames() {
  const pending: (() => void)[] = [];
  return {
    schedule: (flush: () => void) => pending.push(flush),
    frame: () => {
      for (const flush of pending.splice(0)) flush();
    },
    get scheduled() {
      return pending.length;
    },
  };
}

const nodeIds = Array.from({ length: 16 }, (_, i) => `n${i}`);

function telemetry(nodeId: string, temperatureC: number): UiEvent {
  const devices = [0, 1, 2, 3].map((d) => device({ uuid: `${nodeId}-g${d}`, index: d, temperatureC }));
  return {
    type: "telemetry",
    nodeId,
    devices,
    samples: Object.fromEntries(devices.map((d) => [d.uuid, { at: 1, imagesPerMin: 1, utilizationPct: 1 }])),
  };
}

function countNotifications(subscribe: (listener: () => void) => () => void) {
  let count = 0;
  const stop = subscribe(() => {
    count += 1;
  });
  return {
    get count() {
      return count;
    },
    stop,
  };
}

beforeEach(() => {
  useQueueStore.setState(applyJobList(initialQueueState, [job({ id: "a", state: "running" })]), true);
  useFarmStore.setState(
    applyNodes(
      initialFarmState,
      nodeIds.map((id) => node({ id })),
    ),
    true,
  );
  useGalleryStore.setState({ byJob: {}, filters: noFilters, selectedId: null });
});

describe("event batching", () => {
  it("applies every event of a frame in one update per store", () => {
    const frames = manualFrames();
    const batcher = createEventBatcher(applyEvents, frames.schedule);
    const farm = countNotifications(useFarmStore.subscribe);
    const queue = countNotifications(useQueueStore.subscribe);

    // 64 devices at 1 Hz plus a burst of step progress, all within one frame.
    for (const id of nodeIds) batcher.push(telemetry(id, 60));
    for (let i = 0; i < 20; i++) {
      batcher.push({ type: "image.progress", jobId: "a", imageId: `i${i}`, step: 1, steps: 8, device: "n0-g0" });
    }
    expect(frames.scheduled).toBe(1);
    expect(farm.count).toBe(0);

    frames.frame();
    expect(farm.count).toBe(1);
    expect(queue.count).toBe(1);
    const devices = useFarmStore.getState().nodes.flatMap((n) => n.devices);
    expect(devices).toHaveLength(64);
    expect(devices.every((d) => d.temperatureC === 60)).toBe(true);
    expect(Object.keys(useQueueStore.getState().steps)).toHaveLength(20);
    farm.stop();
    queue.stop();
  });

  it("keeps only the newest telemetry per node and snapshot per kind while frames are held back", () => {
    const frames = manualFrames();
    const seen: UiEvent[][] = [];
    const batcher = createEventBatcher((events) => seen.push(events), frames.schedule);
    // A hidden window gets no frames: ten seconds of telemetry and queue snapshots pile up.
    for (let second = 0; second < 10; second++) {
      for (const id of nodeIds) batcher.push(telemetry(id, second));
      batcher.push({ type: "queue.changed", jobs: [job({ id: "a", state: "running" })], queuePaused: false });
    }
    batcher.push({ type: "image.done", image: image({ id: "x", jobId: "a", index: 0, state: "done" }) });
    frames.frame();
    expect(seen).toHaveLength(1);
    const batch = seen[0] as UiEvent[];
    expect(batch).toHaveLength(nodeIds.length + 2);
    const temperatures = batch.flatMap((e) => (e.type === "telemetry" ? e.devices.map((d) => d.temperatureC) : []));
    expect(new Set(temperatures)).toEqual(new Set([9]));
  });

  it("holds at most MAX_BUFFERED_IMAGES finished images while hidden; the jobs of the rest are fetched whole after", () => {
    const frames = manualFrames();
    const seen: UiEvent[][] = [];
    const resynced: string[][] = [];
    const batcher = createEventBatcher(
      (events) => seen.push(events),
      frames.schedule,
      (jobs) => resynced.push(jobs),
    );
    // An overnight render while the window is hidden: every image's event arrives, no frame runs.
    for (let i = 0; i < 3 * MAX_BUFFERED_IMAGES; i++)
      batcher.push({ type: "image.done", image: image({ id: `i${i}`, jobId: i < 1000 ? "a" : "b", index: i }) });
    frames.frame();
    expect(seen[0]).toHaveLength(MAX_BUFFERED_IMAGES);
    expect(resynced).toEqual([["a", "b"]]);
    // The next batch holds images again.
    batcher.push({ type: "image.done", image: image({ id: "next", jobId: "b", index: 2000 }) });
    frames.frame();
    expect(seen[1]).toHaveLength(1);
    expect(resynced).toHaveLength(1);
  });

  it("telemetry never notifies gallery or queue subscribers", () => {
    const frames = manualFrames();
    const batcher = createEventBatcher(applyEvents, frames.schedule);
    const gallery = countNotifications(useGalleryStore.subscribe);
    const queue = countNotifications(useQueueStore.subscribe);
    let galleryRuns = 0;
    // What the gallery view selects: its slices are not even recomputed for telemetry.
    const stopSelector = useGalleryStore.subscribe((s) => {
      galleryRuns += 1;
      return s.byJob;
    });

    for (let second = 0; second < 5; second++) {
      for (const id of nodeIds) batcher.push(telemetry(id, 50 + second));
      batcher.push({ type: "nodes.changed", nodes: nodeIds.map((id) => node({ id, version: `0.${second}` })) });
      frames.frame();
    }
    expect(gallery.count).toBe(0);
    expect(galleryRuns).toBe(0);
    expect(queue.count).toBe(0);
    expect(useFarmStore.getState().nodes[0]?.version).toBe("0.4");

    batcher.push({ type: "image.done", image: image({ id: "x", jobId: "a", index: 0, state: "done" }) });
    frames.frame();
    expect(gallery.count).toBe(1);
    gallery.stop();
    queue.stop();
    stopSelector();
  });

  it("keeps a transient A1111 job's finished images out of the gallery: their pictures went to the client alone", () => {
    useQueueStore.setState(
      applyJobList(initialQueueState, [job({ id: "api", state: "running", transient: true })]),
      true,
    );
    applyEvents([
      { type: "image.done", image: image({ id: "from-api", jobId: "api", index: 0, state: "done" }) },
      { type: "image.done", image: image({ id: "kept", jobId: "a", index: 0, state: "done" }) },
    ]);
    expect(Object.keys(useGalleryStore.getState().byJob)).toEqual(["a"]);
  });

  it("keeps out a transient job's images the page never saw listed (it started and ended while the window was hidden)", () => {
    useQueueStore.setState(applyJobList(initialQueueState, []), true);
    useGalleryStore.setState({ byJob: {} });
    applyEvents([
      {
        type: "image.done",
        image: image({ id: "from-api", jobId: "unseen", index: 0, state: "done" }),
        transient: true,
      },
      { type: "queue.changed", jobs: [], queuePaused: false },
    ]);
    expect(useGalleryStore.getState().byJob).toEqual({});
  });
});
