import { z } from "zod";
import { NodeDevices } from "./device";

/** A certificate's SHA-256 fingerprint: 64 hex digits, no separators. */
export const Fingerprint = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "must be a SHA-256 fingerprint (64 lowercase hex digits)");

export const ModelInfo = z.object({
  name: z.string(),
  kind: z.string(),
  /** sha256 over the model's defining content, so studios can tell copies apart. */
  hash: z.string(),
  demo: z.boolean(),
  description: z.string(),
  defaultSteps: z.number().int().positive(),
  defaultWidth: z.number().int().positive(),
  defaultHeight: z.number().int().positive(),
  defaultGuidance: z.number().nonnegative(),
  /** Written into PNG parameters when a task names no sampler. */
  defaultSampler: z.string(),
  maxWidth: z.number().int().positive(),
  maxHeight: z.number().int().positive(),
  maxSteps: z.number().int().positive(),
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
  unavailableReason: z.string().nullable(),
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
  client: z.string(),
  name: z.string(),
  weight: z.number().positive(),
});
export type NodeCaller = z.infer<typeof NodeCaller>;

export const NodeInfo = z.object({
  id: z.string().uuid(),
  name: z.string(),
  version: z.string(),
  protocol: z.number().int(),
  startedAt: z.string(),
  /** SHA-256 of the certificate the node serves its API with. */
  fingerprint: Fingerprint,
  devices: NodeDevices,
  models: z.array(ModelInfo),
  limits: NodeLimits,
  you: NodeCaller.optional(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const Health = z.object({
  status: z.enum(["ok", "starting", "degraded", "stopping"]),
  ready: z.boolean(),
  id: z.string(),
  version: z.string(),
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
