import { join } from "node:path";

/**
 * Targets that must not reach a file outside the output folder, nor one that is
 * no image in it: `..` segments, a symlinked file and folder pointing out
 * (`escape.png`, `escape-dir/` must exist as such links to `outside`), a sibling
 * folder sharing the prefix, a relative path, a NUL, the folder itself and a
 * missing file. `image` is a real image inside the output folder.
 */
export function outputEscapes(output: string, outside: string, image: string): string[] {
  return [
    join(output, "..", "private", "secret.png"),
    `${output}/2025-01-01 lighthouse/../../private/secret.png`,
    join(outside, "secret.png"),
    join(output, "escape.png"),
    join(output, "escape-dir", "secret.png"),
    `${output}-evil/x.png`,
    "2025-01-01 lighthouse/0001.png",
    `${image}\0.png`,
    output,
    join(output, "missing.png"),
  ];
}
