import { beforeEach, describe, expect, it, vi } from "vitest";
import { createActions } from "../../../renderer/api/actions";
import { UiError } from "../../../renderer/api/ui-error";
import type { UiTransport } from "../../../renderer/api/ui-transport";
import { initialFarmState, useFarmStore } from "../../../renderer/stores/farm-store";
import { noFilters, useGalleryStore } from "../../../renderer/stores/gallery-store";
import { useNoticeStore } from "../../../renderer/stores/notice-store";
import { applyQueueChanged, initialQueueState, useQueueStore } from "../../../renderer/stores/queue-store";
import type { ImageSummary, JobSummary, UiCommandName } from "../../../shared/ui-api";
import { image, job, node } from "./ui-fixtures";

/** A transport whose coordinator is a table of answers; records every call. */
function fakeTransport(answers: Partial<Record<UiCommandName, (args: never) => unknown>>) {
  const calls: [UiCommandName, unknown][] = [];
  const transport: UiTransport = {
    call: (async (command: UiCommandName, args: unknown) => {
      calls.push([command, args]);
      const answer = answers[command];
      if (!answer) throw new UiError("E_INTERNAL", `no answer for ${command}`);
      return answer(args as never);
    }) as UiTransport["call"],
    subscribe: () => () => undefined,
    imageUrl: (path) => `img:${path}`,
    thumbnailUrl: (path, size) => `thumb:${size}:${path}`,
    initImageUrl: (sha256) => `init:${sha256}`,
  };
  return { transport, calls };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

beforeEach(() => {
  useQueueStore.setState(initialQueueState, true);
  useFarmStore.setState(initialFarmState, true);
  useGalleryStore.setState({ byJob: {}, filters: noFilters, selectedId: null });
  useNoticeStore.setState({ notices: [], nextId: 1 }, true);
});

describe("actions", () => {
  it("refresh loads nodes, every job, whether the queue is paused, which mode the app runs in and the model library", async () => {
    const { transport } = fakeTransport({
      listNodes: () => [node({ id: "n1" })],
      listJobs: () => [job({ id: "a" }), job({ id: "b", state: "done" })],
      queueState: () => ({ paused: true }),
      appMode: () => ({ mode: "farm", farm: "Farm on redis://10.0.0.5:6379" }),
      modelLibrary: () => ({ dir: "/srv/kiln-models", onDemand: true, changeable: false, packs: [] }),
    });
    await createActions(transport).refresh();
    expect(useFarmStore.getState().nodes.map((n) => n.id)).toEqual(["n1"]);
    expect(useFarmStore.getState().library).toMatchObject({ dir: "/srv/kiln-models", onDemand: true });
    expect(useFarmStore.getState().mode).toEqual({ mode: "farm", farm: "Farm on redis://10.0.0.5:6379" });
    expect(useQueueStore.getState().jobs.map((j) => j.id)).toEqual(["a", "b"]);
    expect(useQueueStore.getState().loaded).toBe(true);
    expect(useQueueStore.getState().queuePaused).toBe(true);
  });

  it("pauses and resumes the whole queue; a failure becomes a notice", async () => {
    const { transport, calls } = fakeTransport({ pauseQueue: () => ({ ok: true }) });
    const actions = createActions(transport);
    await actions.pauseQueue();
    await actions.resumeQueue();
    expect(calls.map(([c]) => c)).toEqual(["pauseQueue", "resumeQueue"]);
    expect(useNoticeStore.getState().notices.map((n) => n.text)).toEqual([
      "Resuming the queue failed: no answer for resumeQueue",
    ]);
  });

  it("settles jobs that left queue.changed with one listJobs", async () => {
    vi.useFakeTimers();
    try {
      const { transport, calls } = fakeTransport({ listJobs: () => [job({ id: "a", state: "done" })] });
      const actions = createActions(transport);
      useQueueStore.setState((s) => applyQueueChanged(s, [job({ id: "a", state: "running" })], false));
      useQueueStore.setState((s) => applyQueueChanged(s, [], false));
      actions.afterEvents([{ type: "queue.changed", jobs: [], queuePaused: false }]);
      actions.afterEvents([{ type: "queue.changed", jobs: [], queuePaused: false }]);
      await vi.advanceTimersByTimeAsync(200);
      expect(calls.filter(([c]) => c === "listJobs")).toHaveLength(1);
      expect(useQueueStore.getState().jobs[0]?.state).toBe("done");
      expect(useQueueStore.getState().settling).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("the gallery fetches each job's images once, newest first, four at a time, and again when they change", async () => {
    const jobs: JobSummary[] = Array.from({ length: 6 }, (_, i) => job({ id: `j${i}`, createdAt: i }));
    useQueueStore.setState({ jobs });
    let open = 0;
    let peak = 0;
    const { transport, calls } = fakeTransport({
      jobImages: async ({ jobId }: { jobId: string }): Promise<ImageSummary[]> => {
        open += 1;
        peak = Math.max(peak, open);
        await flush();
        open -= 1;
        return [image({ id: `${jobId}-0`, jobId, index: 0 })];
      },
    });
    const actions = createActions(transport);
    actions.watchGallery();
    await until(() => Object.keys(useGalleryStore.getState().byJob).length === 6);
    expect(calls.map(([, args]) => (args as { jobId: string }).jobId)).toEqual(["j5", "j4", "j3", "j2", "j1", "j0"]);
    expect(peak).toBe(4);

    // A failure changes what the job's images are; the next queue update refetches that job only.
    useQueueStore.setState({
      jobs: jobs.map((j) => (j.id === "j2" ? { ...j, counts: { ...j.counts, failed: 1 } } : j)),
    });
    actions.afterEvents([{ type: "queue.changed", jobs: [], queuePaused: false }]);
    await flush();
    expect(calls.slice(6).map(([, args]) => (args as { jobId: string }).jobId)).toEqual(["j2"]);
  });

  it("keeps the job this page queued last current before the gallery is opened: a failure fetches its images again", async () => {
    let fetches = 0;
    const { transport } = fakeTransport({
      submitJob: () => ({ jobId: "mine", images: 2 }),
      jobImages: ({ jobId }: { jobId: string }) => {
        fetches++;
        return [image({ id: `${jobId}-0`, jobId, index: 0 })];
      },
    });
    const actions = createActions(transport);
    await actions.submitJob({ prompts: ["a kiln"], count: 2 });
    await until(() => fetches === 1);
    const mine = job({ id: "mine", counts: { total: 2, queued: 0, running: 0, done: 1, failed: 1, cancelled: 0 } });
    useQueueStore.setState({ jobs: [mine, job({ id: "other" })] });
    actions.afterEvents([{ type: "queue.changed", jobs: [], queuePaused: false }]);
    await until(() => fetches === 2);
    await flush();
    // Only that job: the gallery, never opened, fetches no other.
    expect(fetches).toBe(2);
  });

  it("fetches whole the images of jobs whose events a hidden window dropped, and only those", async () => {
    useQueueStore.setState({ jobs: [job({ id: "a", createdAt: 2 }), job({ id: "b", createdAt: 1 })] });
    const { transport, calls } = fakeTransport({
      jobImages: ({ jobId }: { jobId: string }) => [image({ id: `${jobId}-0`, jobId, index: 0 })],
    });
    const actions = createActions(transport);
    actions.watchGallery();
    await until(() => Object.keys(useGalleryStore.getState().byJob).length === 2);
    actions.resyncJobs(["b"]);
    await until(() => calls.length === 3);
    await flush();
    expect(calls.map(([, args]) => (args as { jobId: string }).jobId)).toEqual(["a", "b", "b"]);
  });

  it("reads the queue first for a dropped job the page never saw listed, then fetches its images", async () => {
    useQueueStore.setState({ jobs: [job({ id: "a", createdAt: 2 })] });
    const { transport, calls } = fakeTransport({
      listJobs: () => [job({ id: "a", createdAt: 2 }), job({ id: "unseen", createdAt: 3 })],
      jobImages: ({ jobId }: { jobId: string }) => [image({ id: `${jobId}-0`, jobId, index: 0 })],
    });
    const actions = createActions(transport);
    actions.watchGallery();
    await until(() => Object.keys(useGalleryStore.getState().byJob).length === 1);
    actions.resyncJobs(["unseen"]);
    await until(() => calls.some(([c, args]) => c === "jobImages" && (args as { jobId: string }).jobId === "unseen"));
    expect(calls.map(([c]) => c)).toContain("listJobs");
  });

  it("the gallery asks nothing of a transient job (A1111's save_images false): its pictures went to the client alone", async () => {
    useQueueStore.setState({
      jobs: [job({ id: "kept", createdAt: 1 }), job({ id: "api", createdAt: 2, transient: true })],
    });
    const { transport, calls } = fakeTransport({
      jobImages: ({ jobId }: { jobId: string }) => [image({ id: `${jobId}-0`, jobId, index: 0 })],
    });
    createActions(transport).watchGallery();
    await until(() => Object.keys(useGalleryStore.getState().byJob).length === 1);
    await flush();
    expect(calls.map(([, args]) => (args as { jobId: string }).jobId)).toEqual(["kept"]);
    expect(Object.keys(useGalleryStore.getState().byJob)).toEqual(["kept"]);
  });

  it("re-runs an image by asking the coordinator for it again, which knows its job's settings", async () => {
    const { transport, calls } = fakeTransport({ rerunImage: () => ({ jobId: "r", images: 1 }) });
    await createActions(transport).rerun(image({ id: "x", jobId: "a", index: 3, seed: 777, state: "done" }));
    expect(calls).toEqual([["rerunImage", { imageId: "x" }]]);
    expect(useNoticeStore.getState().notices.map((n) => n.text)).toEqual(["Seed 777 is in the queue again"]);
  });

  it("moves a job dropped beside one of its priority; beside another priority it stays and says why", async () => {
    const { transport, calls } = fakeTransport({ reorderJob: () => ({}) });
    useQueueStore.setState({
      jobs: [
        job({ id: "c", name: "rush", position: 2, priority: 5 }),
        job({ id: "a", name: "plates", position: 0 }),
        job({ id: "b", name: "props", position: 1 }),
      ],
    });
    const actions = createActions(transport);
    await actions.moveJobBeside("b", "a", "before");
    expect(calls).toEqual([["reorderJob", { jobId: "b", position: 0 }]]);
    await actions.moveJobBeside("a", "c", "before");
    expect(calls).toHaveLength(1);
    expect(useNoticeStore.getState().notices.map((n) => n.text)).toEqual([
      '"plates" has priority 0 and "rush" 5: higher priorities run first, so set its priority to 5 to move it there',
    ]);
  });

  it("turns a failed action into a notice that says what failed and why", async () => {
    const { transport } = fakeTransport({});
    await createActions(transport).cancelJob("a");
    expect(useNoticeStore.getState().notices).toEqual([
      { id: 1, kind: "error", text: "Cancelling the job failed: no answer for cancelJob" },
    ]);
  });
});

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await flush();
  expect(check()).toBe(true);
}
