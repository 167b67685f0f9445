import { z } from "zod";
import { isPackFileName } from "./pack-files";
import { ModelName } from "./task";

/**
 * Pushing a model pack from a studio's library to a node, over the node's
 * pinned TLS link. A pack is known by its content hash (sha256 of
 * packHashInput over its files), a file by its sha256. The node stages a push
 * apart, keyed by the pack hash, so an app or node restart resumes from the
 * bytes already there; it verifies every file and the pack before moving it
 * into its models folder in one rename.
 *
 * The flow an app follows:
 *   POST   /v1/model-pushes                      offer (PackOffer) → PushStatus: what to send
 *   PUT    /v1/model-pushes/:hash/files/:index?offset=N   raw bytes of file `index` from N
 *          (409 E_CONFLICT with details { index, offset } when N is not what the node has: resume from
 *          offset; with details.busy another upload of that file is still under way: wait, then ask again)
 *   GET    /v1/model-pushes/:hash                 PushStatus
 *   POST   /v1/model-pushes/:hash/commit          verify and install → PushCommitted
 *   DELETE /v1/model-pushes/:hash                 cancel: the staging is removed
 */

/** Most files one pack may have (an SDXL optimum export has about 30). */
export const MAX_PUSH_FILES = 4096;
/** Largest file of a pack: 1 TiB. */
export const MAX_PUSH_FILE_BYTES = 2 ** 40;
/** Largest pack: 16 TiB, so a sum of sizes never leaves exact integers. */
export const MAX_PUSH_PACK_BYTES = 2 ** 44;
/** Most bytes of one upload request; a client sends a file as a series of these. */
export const MAX_PUSH_CHUNK_BYTES = 8 * 1024 * 1024;
const MAX_PATH_CHARS = 1024;
const MAX_SEGMENT_CHARS = 255;

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits (a sha256)");

/**
 * A pack's name as it is pushed: a model name that is also one safe folder
 * name, since the pack lands in the node's models folder under it.
 */
export const PushPackName = ModelName.max(128).regex(
  /^[A-Za-z0-9][A-Za-z0-9._+-]*$/,
  "must start with a letter or digit and use only letters, digits, '.', '_', '+' and '-' (it becomes a folder name)",
);

/** Why a relative path is not acceptable in a pack, or null when it is. */
export function packPathProblem(path: string): string | null {
  if (path.length === 0) return "must not be empty";
  if (path.length > MAX_PATH_CHARS) return `must be at most ${MAX_PATH_CHARS} characters`;
  if (path.includes("\0")) return "must not contain NUL";
  if (path.includes("\\")) return "must use '/' between folders, not '\\'";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused here
  if (/[\u0000-\u001f\u007f]/.test(path)) return "must not contain control characters";
  if (path.startsWith("/")) return "must be relative to the pack's folder, not start with '/'";
  for (const segment of path.split("/")) {
    if (segment === "") return "must not have empty segments ('//' or a trailing '/')";
    if (segment === "." || segment === "..") return `must not contain '${segment}' segments`;
    if (segment.length > MAX_SEGMENT_CHARS) return `must have names of at most ${MAX_SEGMENT_CHARS} characters`;
    if (segment.startsWith(".")) return `must not name dot-files or dot-folders ('${segment}')`;
    if (!isPackFileName(segment))
      return `names '${segment}', which is not part of a pack's content (other frameworks' weights, docs and pictures are not counted or sent)`;
  }
  return null;
}

export const PackPath = z.string().superRefine((path, ctx) => {
  const problem = packPathProblem(path);
  if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
});

export const PushFile = z.object({
  path: PackPath,
  size: z
    .number()
    .int("must be a whole number of bytes")
    .min(0)
    .max(MAX_PUSH_FILE_BYTES, `must be at most ${MAX_PUSH_FILE_BYTES} bytes`),
  sha256: Sha256Hex,
});
export type PushFile = z.infer<typeof PushFile>;

/**
 * What an app offers a node: the pack's name, content hash and files. The
 * node checks that the hash is the sha256 of packHashInput(files) (it owns
 * the crypto; shared code does no I/O and no hashing).
 */
export const PackOffer = z
  .object({
    name: PushPackName,
    hash: Sha256Hex,
    files: z
      .array(PushFile)
      .min(1, "a pack has at least one file")
      .max(MAX_PUSH_FILES, `a pack has at most ${MAX_PUSH_FILES} files`),
  })
  .superRefine((offer, ctx) => {
    const total = offer.files.reduce((sum, f) => sum + f.size, 0);
    if (total > MAX_PUSH_PACK_BYTES)
      ctx.addIssue({ code: "custom", path: ["files"], message: `add up to more than ${MAX_PUSH_PACK_BYTES} bytes` });
    const paths = new Set(offer.files.map((f) => f.path));
    const seen = new Set<string>();
    offer.files.forEach((file, index) => {
      if (seen.has(file.path))
        ctx.addIssue({ code: "custom", path: ["files", index, "path"], message: `'${file.path}' is listed twice` });
      seen.add(file.path);
      // A file cannot also be a folder of another file.
      const segments = file.path.split("/");
      for (let i = 1; i < segments.length; i++) {
        const folder = segments.slice(0, i).join("/");
        if (paths.has(folder))
          ctx.addIssue({
            code: "custom",
            path: ["files", index, "path"],
            message: `'${folder}' is listed as a file and as a folder`,
          });
      }
    });
  });
export type PackOffer = z.infer<typeof PackOffer>;

/**
 * How a file of a push gets to the node: sent by the app, or hard-linked (or
 * copied, where linking fails) from a pack the node already has with a file
 * of the same sha256.
 */
export const PushFileSource = z.enum(["send", "linked", "copied"]);
export type PushFileSource = z.infer<typeof PushFileSource>;

export const PushFileStatus = z.object({
  index: z.number().int().min(0),
  path: z.string(),
  size: z.number().int().min(0),
  /** Bytes the node has: send from here (an upload at another offset gets 409 with this one). */
  have: z.number().int().min(0),
  source: PushFileSource,
});
export type PushFileStatus = z.infer<typeof PushFileStatus>;

/**
 * A push as the node sees it: every file with the bytes it has. `installed`:
 * the pack (this name, this hash) is already in the node's models folder and
 * there is nothing to do. `complete`: every byte is there; commit next.
 */
export const PushStatus = z.object({
  name: z.string(),
  hash: Sha256Hex,
  installed: z.boolean(),
  complete: z.boolean(),
  files: z.array(PushFileStatus),
  totalBytes: z.number().int().min(0),
  /** Bytes the app still has to send. */
  bytesToSend: z.number().int().min(0),
  /** Bytes linked or copied from the node's other packs instead of sent. */
  bytesLinked: z.number().int().min(0),
  startedAt: z.string().nullable(),
});
export type PushStatus = z.infer<typeof PushStatus>;

/** The answer to an upload: the file's bytes on the node now. */
export const PushChunkAccepted = z.object({
  index: z.number().int().min(0),
  have: z.number().int().min(0),
  complete: z.boolean(),
});
export type PushChunkAccepted = z.infer<typeof PushChunkAccepted>;

export const PushCommitted = z.object({
  name: z.string(),
  hash: Sha256Hex,
  /** The folder of the node's models folder the pack now lives in. */
  folder: z.string(),
  available: z.boolean(),
  unavailableReason: z.string().nullable(),
});
export type PushCommitted = z.infer<typeof PushCommitted>;

/** Where a pack on a node came from, for `kiln-node models` and the app's farm panel. */
export const PackSource = z.object({
  source: z.enum(["push", "owner"]),
  /** The paired app that pushed it. */
  client: z.string().optional(),
  clientName: z.string().optional(),
  at: z.string().optional(),
});
export type PackSource = z.infer<typeof PackSource>;
