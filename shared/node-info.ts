import { z } from "zod";
import { NodeDevices } from "./device";
import { NodeMessage } from "./errors";
import { Guidance, ModelName, Steps } from "./task";
import { MAX_UPSCALED_EDGE } from "./upscale";

/** The name a node goes by in the studio app (`kiln-node --name`), as its mDNS advert carries it too. */
export const NodeName = z.string().min(1, "must not be empty").max(100, "must be at most 100 characters");

/** Far more models than a node's library holds: a node listing more is refused, not kept in memory. */
export const MAX_MODELS_PER_NODE = 4096;

/** A version or a time as a node writes it. */
const NodeStamp = z.string().max(64);

/** A certificate's SHA-256 fingerprint: 64 hex digits, no separators. */
export const Fingerprint = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "must be a SHA-256 fingerprint (64 lowercase hex digits)");

export const ModelInfo = z.object({
  name: ModelName,
  kind: z.string().max(64),
  /** sha256 over the model's defining content, so studios can tell copies apart. */
  hash: z.string().max(128),
  demo: z.boolean(),
  /** The pack's words (a pack's manifest allows 1,000 characters): cut, never a reason to refuse the node. */
  description: NodeMessage,
  defaultSteps: Steps,
  defaultWidth: z.number().int().positive().max(MAX_UPSCALED_EDGE),
  defaultHeight: z.number().int().positive().max(MAX_UPSCALED_EDGE),
  defaultGuidance: Guidance,
  /** Written into PNG parameters when a task names no sampler. */
  defaultSampler: z.string().max(64),
  /** An upscaler's are the largest picture it makes; a generating model's are within the protocol's edge. */
  maxWidth: z.number().int().positive().max(MAX_UPSCALED_EDGE),
  maxHeight: z.number().int().positive().max(MAX_UPSCALED_EDGE),
  maxSteps: Steps,
  /** Width and height must be multiples of this. */
  sizeMultiple: z.number().int().positive().default(8),
  /** Smallest width and height it renders; absent from older nodes (64, the protocol's own floor). */
  minEdge: z.number().int().positive().optional(),
  /** Whether it can start from an image (img2img: the pack has a VAE encoder); absent from older nodes. */
  img2img: z.boolean().optional(),
  /** Whether it can run hires fix's second pass (packs can: the latent upscaler needs no VAE encoder); absent from older nodes. */
  hires: z.boolean().optional(),
  /** An upscaler's own factor (kind "upscaler"); absent for other models. */
  scale: z.number().int().positive().optional(),
  /** Bytes of the model's files on the node (0 for models built in code). */
  sizeBytes: z.number().int().nonnegative().default(0),
  available: z.boolean(),
  /** Often an error's message from the node (a runtime that cannot load): cut, like the description. */
  unavailableReason: NodeMessage.nullable(),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

export const NodeLimits = z.object({
  maxBodyBytes: z.number().int().positive(),
  maxImagesPerTask: z.number().int().positive(),
  queuePerDevice: z.number().int().positive(),
  baseTaskTimeoutS: z.number().positive(),
});
export type NodeLimits = z.infer<typeof NodeLimits>;

/** The caller as this node knows it: how an app finds itself among a device's clients. */
export const NodeCaller = z.object({
  client: z.string().max(128),
  name: z.string().max(200),
  weight: z.number().positive(),
});
export type NodeCaller = z.infer<typeof NodeCaller>;

export const NodeInfo = z.object({
  id: z.string().uuid(),
  name: NodeName,
  version: NodeStamp,
  protocol: z.number().int(),
  startedAt: NodeStamp,
  /** SHA-256 of the certificate the node serves its API with. */
  fingerprint: Fingerprint,
  devices: NodeDevices,
  models: z.array(ModelInfo).max(MAX_MODELS_PER_NODE),
  limits: NodeLimits,
  you: NodeCaller.optional(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const Health = z.object({
  status: z.enum(["ok", "starting", "degraded", "stopping"]),
  ready: z.boolean(),
  id: z.string().max(128),
  version: NodeStamp,
  protocol: z.number().int(),
  workersUp: z.number().int().nonnegative(),
  workersTotal: z.number().int().nonnegative(),
  modelsLoaded: z.number().int().nonnegative(),
  paired: z.boolean(),
});
export type Health = z.infer<typeof Health>;

/** The TXT record of the `_kiln._tcp` advert: a hint only, never trusted. */
export const MdnsTxt = z.object({
  id: z.string().uuid(),
  /** The node's certificate fingerprint, checked again at pairing (the advert itself is not trusted). */
  fp: Fingerprint,
  v: z.coerce.number().int(),
  name: z.string().max(100),
  gpus: z.coerce.number().int().nonnegative(),
  api: z.string().max(32),
});
export type MdnsTxt = z.infer<typeof MdnsTxt>;
