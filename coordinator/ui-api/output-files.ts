import { realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";

/**
 * The real path of `target` when it is a file inside `root`, else null. Resolves
 * symlinks on both sides, so neither `../` nor a link can lead out of the output
 * folder: the only way a request path reaches the filesystem.
 */
export async function resolveInsideRoot(root: string, target: string): Promise<string | null> {
  if (!isAbsolute(target) || target.includes("\0")) return null;
  const [realRoot, realTarget] = await Promise.all([
    // No output folder yet (nothing rendered): nothing can be inside it.
    realpath(resolve(root)).catch(() => null),
    realpath(resolve(target)).catch(() => null),
  ]);
  if (!realRoot || !realTarget) return null;
  const rel = relative(realRoot, realTarget);
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) return null;
  return realTarget;
}
