import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import type { StateDir } from "../state-dir";

/**
 * What one device learned of each pack's memory (batch-limits.ts), kept in the
 * node's state dir (`learned-memory-<device uuid>.json`) so a restart does not
 * run into the same out-of-memory again. Keyed by pack name and content hash: a
 * pack replaced by other bytes starts from the prior again.
 */
const Observations = z.object({
  peaks: z.array(
    z.object({
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      batch: z.number().int().positive(),
      peakMb: z.number().nonnegative(),
    }),
  ),
  failures: z.array(
    z.object({
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      batch: z.number().int().positive(),
    }),
  ),
});
export type Observations = z.infer<typeof Observations>;

const LearnedMemory = z.object({
  version: z.literal(1),
  packs: z.array(z.object({ model: z.string(), hash: z.string() }).and(Observations)),
});
export type LearnedMemory = z.infer<typeof LearnedMemory>;

export class LearnedMemoryFile {
  private readonly name: string;

  constructor(
    private readonly state: StateDir,
    deviceUuid: string,
  ) {
    this.name = `learned-memory-${deviceUuid.replace(/[^A-Za-z0-9-]/g, "_")}.json`;
  }

  /** What an earlier run saved; nothing when there is no file or it is not one of ours (it is then rewritten). */
  load(): LearnedMemory["packs"] {
    const path = this.state.file(this.name);
    if (!existsSync(path)) return [];
    try {
      return LearnedMemory.parse(JSON.parse(readFileSync(path, "utf8"))).packs;
    } catch {
      return [];
    }
  }

  save(packs: LearnedMemory["packs"]): void {
    this.state.writeJson(this.name, { version: 1, packs } satisfies LearnedMemory);
  }
}
