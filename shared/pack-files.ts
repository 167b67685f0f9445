/**
 * What makes up a model pack's content, the same on a node and in a studio's
 * model library, so both name a pack by the same content hash: which files
 * count, and the text the hash is taken over (sha256 of it, by each side).
 */

/**
 * Files that never take part in running a pack: other frameworks' weights
 * (a Hugging Face repo often holds PyTorch and ONNX side by side, and hashing
 * 10 GB of safetensors Kiln never reads would only slow the first start),
 * model cards and sample pictures.
 */
const NOT_RUN = /\.(safetensors|bin|ckpt|pt|pth|msgpack|h5|gguf|md|png|jpe?g|webp)$/i;

/** Whether a file (by its name) belongs to a pack's content: not a dot-file (editor and OS clutter), not NOT_RUN. */
export function isPackFileName(name: string): boolean {
  return !name.startsWith(".") && !NOT_RUN.test(name);
}

/** A file of a pack: its path relative to the pack's folder, with `/` separators, and its sha256. */
export interface PackFileDigest {
  path: string;
  sha256: string;
}

/**
 * The text a pack's content hash is the sha256 of: one `path sha256` line per
 * file, sorted by path, so two copies with the same files in the same layout
 * agree wherever they are.
 */
export function packHashInput(files: readonly PackFileDigest[]): string {
  return [...files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.path} ${f.sha256}\n`)
    .join("");
}
