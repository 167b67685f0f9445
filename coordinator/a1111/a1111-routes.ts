import { rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { freemem, totalmem } from "node:os";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { KilnError } from "../../shared/errors";
import { DEFAULT_STRENGTH, type JobSpec } from "../../shared/job";
import { parseParameters } from "../../shared/png-parameters";
import { API_SPOOL_DIR, type Coordinator } from "../coordinator";
import { storageFailure } from "../store/storage-failure";
import { sendDetail, sendValidation, validationItems } from "./api-errors";
import { ApiGuard, type ApiGuardOptions } from "./api-guard";
import { checkpoints, LATENT_UPSCALE_MODES, SAMPLERS, SCHEDULERS, upscalerItems } from "./api-lists";
import { ApiOptions } from "./api-options";
import { ApiRequests } from "./api-requests";
import { imagesAnswer } from "./images-answer";
import { resizeModeOf, storeInitImages } from "./init-images";
import { inpaintSettings, type PlannedMask, storeMask } from "./inpaint-request";
import { sdModelItem } from "./model-titles";
import { cancelOrphanedRequests } from "./orphaned-requests";
import { readPngText } from "./png-text";
import { txt2imgInfo } from "./txt2img-info";
import { a1111Fields, type PlannedInit, planTxt2Img } from "./txt2img-job";
import {
  echoedImg2ImgParameters,
  echoedParameters,
  IMG2IMG_BODY_BYTES,
  Img2ImgRequest,
  img2imgUnhonoured,
  Txt2ImgRequest,
} from "./txt2img-request";

export interface A1111ApiOptions {
  coordinator: Coordinator;
  log: Logger;
  /** The coordinator's data dir, where the spool of transient jobs' PNGs is. */
  dataDir: string;
  guard: ApiGuardOptions;
  /** For `cmd-flags`: how `kiln serve` was started. */
  flags: { lan: boolean; port: number };
  /** How long a request waits while no device can run its job (10 s by default). */
  stallGraceMs?: number;
}

/** Coordinators whose API has started in this process. */
const started = new WeakSet<Coordinator>();

/** A base64 PNG of 2048² with its text fits with room to spare; every other body stays under the server's 1 MiB. */
const PNG_INFO_BODY_BYTES = 48 * 1024 * 1024;

const PngInfoRequest = z.object({ image: z.string("must be a base64 PNG") }).passthrough();
const ProgressQuery = z.object({ skip_current_image: z.string().optional() }).passthrough();

/**
 * AUTOMATIC1111's `/sdapi/v1` on `kiln serve`'s port, for the tools studios
 * already drive image generation with (Open WebUI, SillyTavern, bots, n8n).
 * Shapes follow A1111's own API models; a txt2img request becomes one durable
 * job in Kiln's queue, sharded over the whole farm, and is marked in the queue
 * as the API's with its client. Who may call it is decided by {@link ApiGuard}
 * before any handler runs (the UI's token does not apply here).
 */
export async function registerA1111Api(app: FastifyInstance, opts: A1111ApiOptions): Promise<void> {
  const { coordinator, log } = opts;
  const guard = new ApiGuard(opts.guard);
  const options = new ApiOptions(() => checkpoints(coordinator.models()));
  const requests = new ApiRequests(coordinator, opts.stallGraceMs);
  const clients = new WeakMap<FastifyRequest, { key: string; label: string }>();
  /** img2img pictures by sha256: how many requests in flight hold each. */
  const initImagesInUse = new Map<string, number>();
  /** Pictures this API stored (the store lacked them) and has not given up yet: the only ones it removes. */
  const apiOwned = new Set<string>();
  /** Answers of txt2img requests not yet sent to the end. */
  const answering = new Set<Promise<void>>();
  // Before the server waits for open connections to end: a txt2img in flight must not hold a stop up.
  // Each is answered, and sent, before the server closes its idle connections (one still answering
  // when it does would otherwise be left open until keep-alive ends, about a minute).
  app.addHook("preClose", async () => {
    requests.close();
    await Promise.race([Promise.all([...answering]), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  });
  // Once per coordinator (a second server on the same one must not cancel the first one's requests).
  if (!started.has(coordinator)) {
    started.add(coordinator);
    await cancelOrphanedRequests(coordinator, join(opts.dataDir, API_SPOOL_DIR), log);
  }

  await app.register(
    async (api) => {
      api.addHook("onRoute", (route) => {
        route.config = { ...route.config, access: "a1111" };
      });

      api.addHook("onRequest", async (request, reply) => {
        const origin = request.headers.origin;
        const answer = guard.check({
          host: request.headers.host,
          origin,
          authorization: request.headers.authorization,
          ip: request.ip,
        });
        // A preflight carries no credentials: it passes on Host and Origin alone.
        if (request.method === "OPTIONS") {
          const cors = guard.corsHeaders(origin);
          if (!cors || (!answer.ok && answer.status === 403)) return sendDetail(reply, 403, "no CORS for this origin");
          return reply
            .code(204)
            .headers({
              ...cors,
              "access-control-allow-methods": "GET, POST",
              "access-control-allow-headers":
                request.headers["access-control-request-headers"] ?? "authorization, content-type",
              "access-control-max-age": "600",
            })
            .send();
        }
        if (!answer.ok) {
          log.warn({ ip: request.ip, url: request.routeOptions.url, status: answer.status }, answer.detail);
          return reply
            .code(answer.status)
            .headers(answer.headers ?? {})
            .send({ detail: answer.detail });
        }
        clients.set(request, {
          key: answer.user ?? request.ip,
          label: answer.user ? `${answer.user} at ${request.ip}` : request.ip,
        });
      });

      api.addHook("onSend", async (request, reply) => {
        const cors = guard.corsHeaders(request.headers.origin);
        if (cors) reply.headers(cors);
      });

      // FastAPI reads a route's body only when it has one: an empty JSON body (axios sends one with
      // every POST) is no body, not an error. Keys that would reach an object's prototype are refused.
      api.removeContentTypeParser("application/json");
      api.addContentTypeParser("application/json", { parseAs: "string" }, (_request, text, done) => {
        if (String(text).trim() === "") return done(null, undefined);
        try {
          done(null, JSON.parse(String(text), refusePrototypeKeys));
        } catch (error) {
          done(Object.assign(error as Error, { statusCode: 400 }), undefined);
        }
      });

      // FastAPI's answers to bodies that are not JSON, too large, or of another type.
      api.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request, reply) => {
        const status = error.statusCode ?? 500;
        if (
          status === 400 ||
          error.code === "FST_ERR_CTP_INVALID_JSON_BODY" ||
          error.code === "FST_ERR_CTP_EMPTY_JSON_BODY"
        )
          return sendValidation(reply, [
            { loc: ["body"], msg: `the body is not valid JSON: ${error.message}`, type: "value_error.jsondecode" },
          ]);
        if (status === 413) return sendDetail(reply, 413, `the body is too large: ${error.message}`);
        if (status === 415) return sendDetail(reply, 415, "send the body as application/json");
        if (status < 500) return sendDetail(reply, status, error.message);
        log.error({ err: error, url: request.url }, "A1111 API request failed");
        // The app's own disk full, or its queue file locked: said as such, with what to do.
        const failure = storageFailure(error);
        if (failure.code === "E_DISK_FULL") return sendDetail(reply, 507, failure.message);
        if (failure.code === "E_TIMEOUT") return sendDetail(reply, 503, failure.message);
        return sendDetail(reply, 500, `Kiln could not answer: ${error.message}`);
      });
      api.setNotFoundHandler((_request, reply) => sendDetail(reply, 404, "Not Found"));
      api.options("/*", async (_request, reply) => reply.code(204).send());

      api.get("/sd-models", async () => checkpoints(coordinator.models()).map(sdModelItem));
      api.post("/refresh-checkpoints", async () => null);
      api.post("/refresh-vae", async () => null);
      api.get("/options", async () => options.all());
      api.post("/options", async (request, reply) => {
        const body = z.record(z.string(), z.unknown()).safeParse(request.body);
        if (!body.success) return sendValidation(reply, validationItems(body.error));
        const updated = options.update(body.data);
        if (!updated.ok)
          return sendValidation(reply, [{ loc: ["body", updated.field], msg: updated.message, type: "value_error" }]);
        return null;
      });
      api.get("/samplers", async () => SAMPLERS);
      api.get("/schedulers", async () => SCHEDULERS);
      api.get("/upscalers", async () => upscalerItems(coordinator.models()));
      api.get("/latent-upscale-modes", async () => LATENT_UPSCALE_MODES);
      api.get("/sd-vae", async () => []);
      api.get("/loras", async () => []);
      api.get("/hypernetworks", async () => []);
      api.get("/face-restorers", async () => []);
      api.get("/realesrgan-models", async () => []);
      api.get("/prompt-styles", async () => []);
      api.get("/scripts", async () => ({ txt2img: [], img2img: [] }));
      api.get("/embeddings", async () => ({ loaded: {}, skipped: {} }));
      api.get("/memory", async () => memory(coordinator));
      api.get("/cmd-flags", async (request) => ({
        api: true,
        nowebui: false,
        listen: opts.flags.lan,
        // The port this answer came in on (`--port 0` picks one).
        port: request.socket.localPort ?? opts.flags.port,
        // Never the passwords themselves (A1111 echoes its --api-auth here).
        api_auth: opts.guard.credentials ? "(set)" : null,
        cors_allow_origins: opts.guard.corsOrigins.join(",") || null,
      }));

      api.get("/progress", async (request, reply) => {
        const query = ProgressQuery.safeParse(request.query);
        if (!query.success) return sendValidation(reply, validationItems(query.error));
        const skip = /^(true|1)$/i.test(query.data.skip_current_image ?? "");
        return requests.progress(clientOf(request).key, !skip);
      });
      api.post("/interrupt", async (request) => {
        requests.interrupt(clientOf(request).key);
        return {};
      });
      // Kiln renders a request's images at once on many devices: there is no "current image" to skip.
      api.post("/skip", async () => null);

      api.post("/png-info", { bodyLimit: PNG_INFO_BODY_BYTES }, async (request, reply) => {
        const body = PngInfoRequest.safeParse(request.body);
        if (!body.success) return sendValidation(reply, validationItems(body.error));
        const text = body.data.image.trim().replace(/^data:image\/[a-z]+;base64,/i, "");
        if (text === "") return { info: "", items: {}, parameters: {} };
        const chunks = /^[A-Za-z0-9+/=\s]+$/.test(text) ? readPngText(Buffer.from(text, "base64")) : null;
        if (!chunks)
          return sendValidation(reply, [{ loc: ["body", "image"], msg: "is not a base64 PNG", type: "value_error" }]);
        const { parameters: info = "", ...items } = chunks;
        return { info, items, parameters: info ? a1111Parameters(info) : {} };
      });

      api.post("/txt2img", async (request, reply) => {
        answered(request, reply);
        if (request.body === undefined || request.body === null) return bodyRequired(reply);
        const body = Txt2ImgRequest.safeParse(request.body);
        if (!body.success) return sendValidation(reply, validationItems(body.error));
        return generate(request, reply, { job: "txt2img", body: body.data });
      });

      api.post("/img2img", { bodyLimit: IMG2IMG_BODY_BYTES }, async (request, reply) => {
        answered(request, reply);
        if (request.body === undefined || request.body === null) return bodyRequired(reply);
        const body = Img2ImgRequest.safeParse(request.body);
        if (!body.success) return sendValidation(reply, validationItems(body.error));
        const held: string[] = [];
        try {
          const stored = await storeHeld(() => storeInitImages(body.data.init_images, coordinator.initImages), held);
          if (!stored.ok) return sendValidation(reply, stored.detail);
          let mask: PlannedMask | undefined;
          if (body.data.mask) {
            const text = body.data.mask;
            const invert = body.data.inpainting_mask_invert === 1;
            const picture = coordinator.initImages.size(stored.sha256);
            const storedMask = await storeHeld(() => storeMask(text, invert, coordinator.initImages, picture), held);
            if (!storedMask.ok) return sendValidation(reply, storedMask.detail);
            mask = { sha256: storedMask.sha256, ...inpaintSettings(body.data).settings };
          }
          return await generate(request, reply, {
            job: "img2img",
            body: body.data,
            init: {
              sha256: stored.sha256,
              strength: body.data.denoising_strength ?? DEFAULT_STRENGTH,
              resizeMode: resizeModeOf(body.data.resize_mode),
              ...(mask ? { mask } : {}),
            },
          });
        } finally {
          for (const hash of held) releaseInitImage(hash, body.data.save_images !== true);
        }
      });
    },
    { prefix: "/sdapi/v1" },
  );

  /**
   * Stores a request's picture (or mask) and holds it (its hash goes into `held`, to be released); stored
   * again when a request with the same picture, ending between the two, removed it.
   */
  async function storeHeld<T extends { ok: true; sha256: string; created: boolean } | { ok: false }>(
    store: () => Promise<T>,
    held: string[],
  ): Promise<T> {
    const stored = await store();
    if (!stored.ok) return stored;
    held.push(stored.sha256);
    initImagesInUse.set(stored.sha256, (initImagesInUse.get(stored.sha256) ?? 0) + 1);
    // Created by this request: the API owns it and may remove it later; a picture the app already had
    // (stored by a person, kiln render or the UI) is never the API's to remove.
    if (stored.created) apiOwned.add(stored.sha256);
    if (coordinator.initImages.has(stored.sha256)) return stored;
    const again = await store();
    if (again.ok && again.created) apiOwned.add(again.sha256);
    return again;
  }

  /**
   * A transient request's picture is removed from the app's init images once no request holds it and no
   * unfinished job names it, so clients sending pictures do not fill the data dir. Saved requests' pictures
   * stay, as `kiln render`'s do.
   */
  function releaseInitImage(sha256: string, transient: boolean): void {
    const holders = (initImagesInUse.get(sha256) ?? 1) - 1;
    if (holders > 0) {
      initImagesInUse.set(sha256, holders);
      return;
    }
    initImagesInUse.delete(sha256);
    if (!apiOwned.delete(sha256)) return;
    const named = (spec: JobSpec) =>
      spec.initImage === sha256 || spec.mask === sha256 || spec.upscale?.source === sha256;
    // Kept for good: a saved request's, or one a job names that may outlive this request.
    if (!transient || coordinator.ledger.listJobs().some((job) => named(job.spec))) return;
    coordinator.initImages.remove(sha256);
  }

  /**
   * Counts an answer as sent once its socket has written it all. "finish" only hands the answer to the
   * socket (and detaches it from the answer): closing an idle connection then would drop what the socket
   * has not written yet (seen: clients got 40 of 60 KB).
   */
  function answered(request: FastifyRequest, reply: FastifyReply): void {
    const socket = request.raw.socket;
    const sent = new Promise<void>((resolve) => {
      reply.raw.once("finish", () => void whenWritten(socket).then(resolve));
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) resolve();
      });
    });
    answering.add(sent);
    void sent.then(() => answering.delete(sent));
  }

  /**
   * One txt2img or img2img request as one job in Kiln's queue: planned, submitted, followed until its
   * images are done (or it is interrupted, abandoned or stalls), and answered in A1111's shape.
   */
  async function generate(
    request: FastifyRequest,
    reply: FastifyReply,
    asked: { job: "txt2img"; body: Txt2ImgRequest } | { job: "img2img"; body: Img2ImgRequest; init: PlannedInit },
  ): Promise<unknown> {
    const { body } = asked;
    const client = clientOf(request);
    const planned = planTxt2Img(body, {
      models: checkpoints(coordinator.models()),
      current: options.currentModel(),
      client: client.label,
      ...(asked.job === "img2img" ? { init: asked.init } : {}),
    });
    if (!planned.ok) {
      return typeof planned.detail === "string"
        ? sendDetail(reply, planned.status, planned.detail)
        : sendValidation(reply, planned.detail);
    }
    const plan = planned.plan;
    if (asked.job === "img2img") {
      plan.warnings.push(...img2imgUnhonoured(asked.body));
      if (asked.body.mask) plan.warnings.push(...inpaintSettings(asked.body).warnings);
    }
    // A client gone while its pictures were read and stored (seconds for a large one): nobody would receive the job.
    if (reply.raw.destroyed) return reply;
    let jobId: string;
    try {
      jobId = coordinator.submitJob(plan.spec).jobId;
    } catch (error) {
      // A request Kiln's queue refuses: a field the model cannot take (size, steps, a model that cannot
      // start from an image), or a job that cannot be.
      if (error instanceof KilnError)
        return sendValidation(
          reply,
          error.fields ? a1111Fields(error.fields) : [{ loc: ["body"], msg: error.message, type: "value_error" }],
        );
      throw error;
    }
    const tracked = requests.track(jobId, {
      job: asked.job,
      client: client.key,
      total: plan.total,
      batchSize: plan.batchSize,
      steps: plan.steps,
    });
    // A client that goes away takes its job with it, as closing A1111's tab would stop it.
    const gone = () => {
      if (!reply.raw.writableFinished) requests.abandon(tracked);
    };
    reply.raw.once("close", gone);
    await tracked.finished;
    reply.raw.off("close", gone);
    const images = coordinator.jobImages(jobId);
    const done = images.filter((i) => i.state === "done" && i.path);
    const paths = done.map((i) => i.path as string);
    // Once the answer is sent, or its client is gone (also before the answer began to stream).
    let removed: Promise<void> | null = null;
    const removeSpooled = () => {
      removed ??= plan.spec.transient
        ? Promise.all(paths.map((path) => rm(path, { force: true }))).then(() => undefined)
        : Promise.resolve();
      return removed;
    };
    reply.raw.once("close", () => void removeSpooled());
    // Stalled or cancelled with nothing finished: there is nothing to send.
    const cancelledHere =
      !tracked.interrupted && !tracked.stalled && coordinator.ledger.job(jobId)?.state === "cancelled";
    if (done.length === 0 && tracked.stalled)
      return reply.code(503).send({
        detail: `no device of the farm can render this request, so it was cancelled: ${tracked.stalled}`,
        code: "E_NOT_READY",
      });
    const failed = images.filter((i) => i.state === "failed");
    if (done.length === 0 && !tracked.interrupted && !cancelledHere) {
      const reason = failed[0]?.error ?? "no image was rendered";
      return reply.code(500).send({ detail: `the farm rendered none of the images: ${reason}`, code: "E_INFERENCE" });
    }
    const warnings = [...plan.warnings];
    if (failed.length > 0) warnings.push(`${failed.length} of ${plan.total} images failed: ${failed[0]?.error}`);
    if (tracked.interrupted && done.length < plan.total)
      warnings.push(`interrupted: ${done.length} of ${plan.total} images were finished`);
    if (tracked.stalled)
      warnings.push(
        `no device of the farm can render the rest, so it was cancelled (${tracked.stalled}): ${done.length} of ${plan.total} images were finished`,
      );
    if (cancelledHere) warnings.push(`cancelled in Kiln: ${done.length} of ${plan.total} images were finished`);
    const answer = imagesAnswer({
      paths,
      sendImages: plan.sendImages,
      parameters: asked.job === "img2img" ? echoedImg2ImgParameters(asked.body) : echoedParameters(body),
      info: (infotexts) =>
        txt2imgInfo({
          prompt: body.prompt ?? "",
          negativePrompt: body.negative_prompt ?? "",
          seeds: plan.seeds,
          width: plan.width,
          height: plan.height,
          steps: plan.steps,
          cfgScale: plan.cfgScale,
          samplerName: plan.samplerName,
          batchSize: plan.batchSize,
          denoisingStrength: plan.denoisingStrength,
          model: plan.model,
          infotexts,
          startedAt: tracked.startedAt,
          warnings,
        }),
      finished: removeSpooled,
    });
    return reply.type("application/json; charset=utf-8").send(answer);
  }

  function clientOf(request: FastifyRequest): { key: string; label: string } {
    return clients.get(request) ?? { key: request.ip, label: request.ip };
  }
}

function bodyRequired(reply: FastifyReply): FastifyReply {
  return sendValidation(reply, [{ loc: ["body"], msg: "field required", type: "value_error.missing" }]);
}

/** Resolves once a socket has written everything it was given (or is gone). */
async function whenWritten(socket: Socket | null): Promise<void> {
  while (socket && !socket.destroyed && socket.writableLength > 0) await new Promise((r) => setTimeout(r, 10));
}

function refusePrototypeKeys(key: string, value: unknown): unknown {
  if (key === "__proto__" || key === "constructor") throw new SyntaxError(`the key "${key}" is not accepted`);
  return value;
}

/** A1111's parse_generation_parameters shape: every field as text, the size split in two. */
function a1111Parameters(info: string): Record<string, string> {
  const parsed = parseParameters(info);
  const out: Record<string, string> = { Prompt: parsed.prompt ?? "", "Negative prompt": parsed.negativePrompt ?? "" };
  for (const [key, value] of Object.entries(parsed.extra)) {
    const size = key === "Size" ? /^(\d+)x(\d+)$/.exec(value) : null;
    if (size) {
      out["Size-1"] = size[1] as string;
      out["Size-2"] = size[2] as string;
    } else out[key] = value;
  }
  return out;
}

/** A1111's MemoryResponse: this machine's RAM, and for `cuda` the farm's VRAM added up over its online devices. */
function memory(coordinator: Coordinator): { ram: Record<string, number>; cuda: Record<string, unknown> } {
  const total = totalmem();
  const free = freemem();
  let vramTotal = 0;
  let vramUsed = 0;
  for (const node of coordinator.listNodes())
    if (node.status === "online")
      for (const device of node.devices) {
        vramTotal += (device.vramTotalMb ?? 0) * 2 ** 20;
        vramUsed += (device.vramUsedMb ?? 0) * 2 ** 20;
      }
  return {
    ram: { free, used: total - free, total },
    cuda:
      vramTotal > 0
        ? { system: { free: vramTotal - vramUsed, used: vramUsed, total: vramTotal } }
        : { error: "unavailable" },
  };
}
