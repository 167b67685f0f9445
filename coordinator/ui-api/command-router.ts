import type { z } from "zod";
import { describeFieldErrors, fieldErrors } from "../../shared/errors";
import { type UiCommandName, UiCommands, type UiRequest, type UiResponse } from "../../shared/ui-api";
import type { Coordinator } from "../coordinator";
import { storageFailure } from "../store/storage-failure";
import { storeInitImage } from "./init-image-upload";

type Handlers = { [C in UiCommandName]: (args: z.output<(typeof UiCommands)[C]["args"]>) => unknown };

/** Maps each command of the UI API contract to the coordinator; the contract map is the only list of channels. */
function handlers(c: Coordinator): Handlers {
  const ok = { ok: true as const };
  return {
    submitJob: (args) => c.submitJob(args),
    rerunImage: ({ imageId }) => c.rerunImage(imageId),
    cancelJob: ({ jobId }) => {
      c.cancelJob(jobId);
      return ok;
    },
    pauseJob: ({ jobId }) => {
      c.pauseJob(jobId);
      return ok;
    },
    resumeJob: ({ jobId }) => {
      c.resumeJob(jobId);
      return ok;
    },
    retryFailed: ({ jobId }) => ({ requeued: c.retryFailed(jobId) }),
    reorderJob: ({ jobId, position }) => {
      c.reorderJob(jobId, position);
      return ok;
    },
    setPriority: ({ jobId, priority }) => {
      c.setPriority(jobId, priority);
      return ok;
    },
    pauseQueue: () => {
      c.pauseQueue();
      return ok;
    },
    resumeQueue: () => {
      c.resumeQueue();
      return ok;
    },
    queueState: () => ({ paused: c.isQueuePaused(), reason: c.pauseReason }),
    appMode: () => c.mode(),
    listJobs: ({ includeFinished }) => c.listJobs(includeFinished),
    jobImages: ({ jobId }) => c.jobImages(jobId),
    listNodes: () => c.listNodes(),
    pairNode: ({ host, port, code }) => c.pairNode(host, port, code),
    addNode: ({ host, port, token, fingerprint }) =>
      c.addNode(host, port, token, fingerprint === undefined ? "trust-first-use" : { fingerprint }),
    drainNode: ({ nodeId, drained }) => {
      c.drainNode(nodeId, drained);
      return ok;
    },
    removeNode: ({ nodeId }) => {
      c.removeNode(nodeId);
      return ok;
    },
    clearBlocklist: ({ nodeId, model }) => {
      c.clearBlocklist(nodeId, model);
      return ok;
    },
    modelLibrary: () => c.modelLibrary(),
    setModelLibrary: (settings) => c.setModelLibrary(settings),
    pushModel: ({ nodeId, model }) => {
      c.pushModel(nodeId, model);
      return ok;
    },
    cancelModelPush: async ({ nodeId, model }) => {
      await c.cancelModelPush(nodeId, model);
      return ok;
    },
    storeInitImage: (args) => storeInitImage(c, args),
  };
}

/**
 * Runs one request of the UI API: validates its arguments with the contract's
 * schema, calls the coordinator and turns any error into `{ code, message, fields }`.
 * The same router serves the WebSocket server and the desktop app's IPC bridge.
 */
export function createCommandRouter(coordinator: Coordinator) {
  const table = handlers(coordinator);
  return async function route(request: UiRequest): Promise<UiResponse> {
    const contract = UiCommands[request.command];
    const args = contract.args.safeParse(request.args ?? {});
    if (!args.success) {
      const fields = fieldErrors(args.error);
      return {
        id: request.id,
        error: {
          code: "E_BAD_REQUEST",
          message: `invalid ${request.command} request: ${describeFieldErrors(fields)}`,
          fields,
        },
      };
    }
    try {
      const result = await (table[request.command] as (a: unknown) => unknown)(args.data);
      return { id: request.id, result };
    } catch (thrown) {
      const error = storageFailure(thrown);
      return {
        id: request.id,
        error: { code: error.code, message: error.message, ...(error.fields ? { fields: error.fields } : {}) },
      };
    }
  };
}
