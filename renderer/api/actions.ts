import type { A1111ApiSettings, A1111ApiStatus } from "../../shared/desktop-bridge";
import { MAX_INIT_IMAGE_BYTES } from "../../shared/img2img";
import type { JobSpecInput } from "../../shared/job";
import type { ThumbnailSize } from "../../shared/thumbnail-sizes";
import type {
  ImageSummary,
  JobSummary,
  LibrarySettings,
  StoredInitImage,
  UiArgs,
  UiEvent,
  UiResult,
} from "../../shared/ui-api";
import type { UpscaleScale } from "../../shared/upscale";
import { bytesToBase64 } from "../model/base64";
import { reorderPosition } from "../model/queue-order";
import { applyLibrary, applyNodes, useFarmStore } from "../stores/farm-store";
import { applyJobImages, useGalleryStore } from "../stores/gallery-store";
import { useNavStore } from "../stores/nav-store";
import { addNotice, dismissNotice, type Notice, useNoticeStore } from "../stores/notice-store";
import { initImageFromGallery, setInitImage, usePromptStore } from "../stores/prompt-store";
import { applyJobList, applyQueuePaused, isFinished, useQueueStore } from "../stores/queue-store";
import { UiError } from "./ui-error";
import type { UiTransport } from "./ui-transport";

/** jobImages calls at once while the gallery catches up (newest jobs first). */
const GALLERY_FETCHES = 4;
/** Info notices leave on their own; errors stay until dismissed. */
const INFO_NOTICE_MS = 5000;
/** The pictures the init image store takes (it converts JPEG and WebP to PNG). */
const PICTURE_TYPES = ["image/png", "image/jpeg", "image/webp"];
/** Jobs that just finished are settled by one listJobs, not one per event. */
const SETTLE_DELAY_MS = 150;

/** What, of a job, makes its stored images stale: a failure, a retry, a cancel, the end of the job. */
function imagesSignature(job: JobSummary): string {
  return `${job.state}:${job.counts.failed}:${job.counts.cancelled}`;
}

/**
 * Everything the UI does that involves the coordinator: calls through the
 * transport, then hands the results to the stores' reducers. Stores never call
 * out; components never call the transport.
 */
export function createActions(transport: UiTransport) {
  let galleryWanted = false;
  /** The job this page queued last: its images are kept current for the Create view, gallery opened or not. */
  let latestSubmitted: string | null = null;
  /** Per job: the images signature its images were fetched at. */
  const fetched = new Map<string, string>();
  /** Jobs waiting for their jobImages call, newest first (a Set keeps order and drops repeats). */
  const fetchQueue = new Set<string>();
  let fetching = 0;
  let settleTimer: ReturnType<typeof setTimeout> | null = null;

  function notice(kind: Notice["kind"], text: string): void {
    const id = useNoticeStore.getState().nextId;
    useNoticeStore.setState((s) => addNotice(s, kind, text));
    if (kind === "info") setTimeout(() => useNoticeStore.setState((s) => dismissNotice(s, id)), INFO_NOTICE_MS);
  }

  /** Runs a fire-and-forget action; its failure becomes a notice that says what failed and why. */
  async function attempt<T>(what: string, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (error) {
      notice("error", `${what} failed: ${(error as Error).message}`);
      return undefined;
    }
  }

  function pumpGallery(): void {
    for (const jobId of fetchQueue) {
      if (fetching >= GALLERY_FETCHES) break;
      fetchQueue.delete(jobId);
      fetching += 1;
      transport
        .call("jobImages", { jobId })
        .then((images) => useGalleryStore.setState((s) => applyJobImages(s, jobId, images)))
        // Forgotten, so the next sync tries again.
        .catch(() => fetched.delete(jobId))
        .finally(() => {
          fetching -= 1;
          pumpGallery();
        });
    }
  }

  /**
   * Fetches the images of jobs the gallery has not seen, or whose images changed beyond the events: every job's once
   * the gallery was opened, before that the job this page queued last (the Create view shows its images, and only
   * a fetch says which failed or were cancelled: no event does).
   */
  function syncGallery(): void {
    const jobs = [...useQueueStore.getState().jobs]
      .filter((j) => galleryWanted || j.id === latestSubmitted)
      .sort((a, b) => b.createdAt - a.createdAt);
    for (const job of jobs) {
      const signature = imagesSignature(job);
      if (fetched.get(job.id) === signature) continue;
      fetched.set(job.id, signature);
      // A transient job's pictures were the client's alone: none is kept to show.
      if (job.counts.cancelled === job.counts.total || job.transient) continue;
      fetchQueue.add(job.id);
    }
    pumpGallery();
  }

  async function refreshJobs(): Promise<void> {
    const jobs = await transport.call("listJobs", { includeFinished: true });
    useQueueStore.setState((s) => applyJobList(s, jobs));
    syncGallery();
  }

  return {
    imageUrl: (path: string) => transport.imageUrl(path),
    thumbnailUrl: (path: string, size: ThumbnailSize) => transport.thumbnailUrl(path, size),
    initImageUrl: (sha256: string) => transport.initImageUrl(sha256),
    /** Reveal in folder exists only in the desktop app. */
    canReveal: transport.shell !== undefined,

    /** Loads everything; runs at start and after every reconnect (events may have been missed). */
    async refresh(): Promise<void> {
      await attempt("Loading the farm and the queue", async () => {
        const [nodes, jobs, queue, mode, library] = await Promise.all([
          transport.call("listNodes", {}),
          transport.call("listJobs", { includeFinished: true }),
          transport.call("queueState", {}),
          transport.call("appMode", {}),
          transport.call("modelLibrary", {}),
        ]);
        useFarmStore.setState((s) => ({ ...applyLibrary(applyNodes(s, nodes), library), mode }));
        useQueueStore.setState((s) => applyQueuePaused(applyJobList(s, jobs), queue.paused, queue.reason));
        // Images of unfinished jobs may have finished while we were away.
        for (const job of jobs) if (!isFinished(job)) fetched.delete(job.id);
        syncGallery();
      });
    },

    /** After each batch of events: settle finished jobs, keep the gallery's jobs current. */
    afterEvents(events: UiEvent[]): void {
      if (!events.some((e) => e.type === "queue.changed")) return;
      if (useQueueStore.getState().settling.length > 0 && settleTimer === null) {
        settleTimer = setTimeout(() => {
          settleTimer = null;
          void attempt("Loading the queue", refreshJobs);
        }, SETTLE_DELAY_MS);
      }
      syncGallery();
    },

    /**
     * Jobs whose image events were dropped (a hidden window's backlog): their images are fetched whole. A job the
     * page never saw listed (it came and went while hidden) is read with the queue first: the sync walks known jobs.
     */
    resyncJobs(jobIds: string[]): void {
      for (const jobId of jobIds) fetched.delete(jobId);
      const known = new Set(useQueueStore.getState().jobs.map((j) => j.id));
      if (jobIds.every((id) => known.has(id))) syncGallery();
      else void attempt("Loading the queue", refreshJobs);
    },

    /** The gallery loads images on first open, then keeps them current. */
    watchGallery(): void {
      galleryWanted = true;
      syncGallery();
    },

    /**
     * Throws the coordinator's error (with its field errors) for the form to show.
     * The new job's images (placeholders until they land) are fetched at once: the
     * Create view shows them there, whether or not the gallery was ever opened.
     */
    async submitJob(spec: JobSpecInput): Promise<UiResult<"submitJob">> {
      const result = await transport.call("submitJob", spec);
      latestSubmitted = result.jobId;
      fetchQueue.add(result.jobId);
      pumpGallery();
      return result;
    },

    cancelJob: (jobId: string) => attempt("Cancelling the job", () => transport.call("cancelJob", { jobId })),
    pauseJob: (jobId: string) => attempt("Pausing the job", () => transport.call("pauseJob", { jobId })),
    resumeJob: (jobId: string) => attempt("Resuming the job", () => transport.call("resumeJob", { jobId })),
    pauseQueue: () => attempt("Pausing the queue", () => transport.call("pauseQueue", {})),
    resumeQueue: () => attempt("Resuming the queue", () => transport.call("resumeQueue", {})),
    moveJob: (jobId: string, position: number) =>
      attempt("Moving the job", () => transport.call("reorderJob", { jobId, position })),

    /** A job dropped before or after another; across priorities it says why it stays (priority runs first). */
    async moveJobBeside(jobId: string, targetId: string, where: "before" | "after"): Promise<void> {
      const jobs = useQueueStore.getState().jobs;
      const position = reorderPosition(jobs, jobId, targetId, where);
      if (position !== null) {
        await attempt("Moving the job", () => transport.call("reorderJob", { jobId, position }));
        return;
      }
      const job = jobs.find((j) => j.id === jobId);
      const target = jobs.find((j) => j.id === targetId);
      if (job && target && !isFinished(target) && job.priority !== target.priority)
        notice(
          "info",
          `"${job.name}" has priority ${job.priority} and "${target.name}" ${target.priority}: higher priorities run first, so set its priority to ${target.priority} to move it there`,
        );
    },
    setPriority: (jobId: string, priority: number) =>
      attempt("Changing the priority", () => transport.call("setPriority", { jobId, priority })),

    async retryFailed(jobId: string): Promise<void> {
      const result = await attempt("Retrying failed images", () => transport.call("retryFailed", { jobId }));
      if (result) notice("info", `${result.requeued} image${result.requeued === 1 ? "" : "s"} back in the queue`);
    },

    async rerun(image: ImageSummary): Promise<void> {
      const result = await attempt(`Re-running seed ${image.seed}`, () =>
        transport.call("rerunImage", { imageId: image.id }),
      );
      if (result) notice("info", `Seed ${image.seed} is in the queue again`);
    },

    /** Throws, for the field that sent the picture to show (the coordinator's refusal names it). */
    storeInitImage: (args: UiArgs<"storeInitImage">): Promise<StoredInitImage> =>
      transport.call("storeInitImage", args),

    /**
     * A dropped, pasted or picked picture becomes the Create view's init image
     * (with a blank mask). Refused here, naming the field, when it is not a
     * PNG, JPEG or WebP or is larger than the store takes; throws the
     * coordinator's refusal otherwise.
     */
    async loadInitImageFile(file: Blob): Promise<void> {
      const refuse = (message: string) => new UiError("E_BAD_REQUEST", message, [{ path: "initImage", message }]);
      if (!PICTURE_TYPES.includes(file.type)) throw refuse("is not a PNG, JPEG or WebP picture");
      if (file.size > MAX_INIT_IMAGE_BYTES)
        throw refuse(`is ${(file.size / 2 ** 20).toFixed(1)} MiB; at most ${MAX_INIT_IMAGE_BYTES / 2 ** 20} MiB`);
      const data = bytesToBase64(new Uint8Array(await file.arrayBuffer()));
      const stored = await transport.call("storeInitImage", { data });
      usePromptStore.setState((s) => setInitImage(s, stored));
    },

    /** Gallery → Create view: the image becomes the init image (read by the app where it stored it, not sent back). */
    async makeInitImage(image: ImageSummary): Promise<void> {
      const stored = await attempt("Using the image as init image", () =>
        transport.call("storeInitImage", { imageId: image.id }),
      );
      if (!stored) return;
      usePromptStore.setState((s) => initImageFromGallery(s, stored, image));
      useGalleryStore.getState().select(null);
      useNavStore.getState().show("create");
    },

    /** Gallery: one upscale job per image with an upscaler pack (each stored by id, as for an init image). */
    async upscale(images: ImageSummary[], model: string, scale: UpscaleScale): Promise<void> {
      let queued = 0;
      for (const image of images) {
        const result = await attempt(`Upscaling seed ${image.seed}`, async () => {
          const stored = await transport.call("storeInitImage", { imageId: image.id });
          return transport.call("submitJob", {
            name: `upscale ×${scale} seed ${image.seed}`,
            prompts: [""],
            model,
            upscale: { source: stored.sha256, scale, fileName: image.path?.split(/[\\/]/).pop() },
          });
        });
        if (result) queued++;
      }
      if (queued > 0)
        notice("info", `${queued} image${queued === 1 ? " is" : "s are"} queued for upscaling ×${scale} with ${model}`);
    },

    reveal: (image: ImageSummary) =>
      attempt("Revealing the file", async () => {
        if (!transport.shell || !image.path) return;
        await transport.shell({ action: "revealPath", target: image.path });
      }),

    /** Throws, for the pairing form to show next to the code. */
    pairNode: (host: string, port: number, code: string) => transport.call("pairNode", { host, port, code }),
    /** Throws, for the add-node form to show. */
    addNode: (host: string, port: number, token: string, certificate: { fingerprint: string } | "trust-first-use") =>
      transport.call(
        "addNode",
        certificate === "trust-first-use"
          ? { host, port, token, trustFirstUse: true }
          : { host, port, token, fingerprint: certificate.fingerprint },
      ),
    drainNode: (nodeId: string, drained: boolean) =>
      attempt(drained ? "Draining the node" : "Resuming the node", () =>
        transport.call("drainNode", { nodeId, drained }),
      ),
    removeNode: (nodeId: string) => attempt("Removing the node", () => transport.call("removeNode", { nodeId })),
    clearBlocklist: (nodeId: string, model: string) =>
      attempt("Clearing the blocklist", () => transport.call("clearBlocklist", { nodeId, model })),
    pushModel: (nodeId: string, model: string) =>
      attempt(`Pushing ${model}`, () => transport.call("pushModel", { nodeId, model })),
    cancelModelPush: (nodeId: string, model: string) =>
      attempt(`Cancelling the push of ${model}`, () => transport.call("cancelModelPush", { nodeId, model })),
    /** The desktop's folder dialog for the library setting; undefined in a browser. */
    chooseFolder: transport.chooseFolder
      ? (): Promise<string | null | undefined> =>
          attempt("Choosing a folder", () => (transport.chooseFolder as () => Promise<string | null>)())
      : undefined,
    /** The desktop's A1111 API switch; undefined in a browser. */
    a1111Api: transport.a1111Api ? () => (transport.a1111Api as () => Promise<A1111ApiStatus>)() : undefined,
    /** Throws, for the settings form to show next to the port; undefined in a browser. */
    setA1111Api: transport.setA1111Api
      ? async (settings: A1111ApiSettings): Promise<A1111ApiStatus> => {
          const set = transport.setA1111Api as (s: A1111ApiSettings) => Promise<A1111ApiStatus>;
          const status = await set(settings);
          notice(
            status.problem ? "error" : "info",
            status.problem
              ? `A1111 API not served: ${status.problem}`
              : status.url
                ? `A1111 API at ${status.url}`
                : "A1111 API off",
          );
          return status;
        }
      : undefined,
    /** Throws, for the settings form to show next to the folder. */
    async setModelLibrary(settings: LibrarySettings): Promise<void> {
      const library = await transport.call("setModelLibrary", settings);
      useFarmStore.setState((s) => applyLibrary(s, library));
      notice("info", `Model library: ${library.dir}, on-demand pushes ${library.onDemand ? "on" : "off"}`);
    },
  };
}

export type Actions = ReturnType<typeof createActions>;
