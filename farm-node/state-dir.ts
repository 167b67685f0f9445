import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

const NodeIdentity = z.object({ id: z.string().uuid(), createdAt: z.string() });

/**
 * The node's state directory: its stable id, hashed tokens and rendered images.
 * The id survives restarts so the coordinator recognises the node by it.
 */
export class StateDir {
  readonly imageDir: string;

  constructor(readonly path: string) {
    this.imageDir = join(path, "images");
    mkdirSync(this.imageDir, { recursive: true, mode: 0o700 });
  }

  nodeId(): string {
    const file = join(this.path, "node.json");
    try {
      return NodeIdentity.parse(JSON.parse(readFileSync(file, "utf8"))).id;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new Error(`${file} is unreadable (${(error as Error).message}); delete it to give this node a new id`);
      }
      const identity = { id: randomUUID(), createdAt: new Date().toISOString() };
      this.writeJson("node.json", identity);
      return identity.id;
    }
  }

  readJson<T>(name: string, schema: z.ZodType<T>, fallback: T): T {
    try {
      return schema.parse(JSON.parse(readFileSync(join(this.path, name), "utf8")));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return fallback;
      throw new Error(`${join(this.path, name)} is unreadable: ${(error as Error).message}`);
    }
  }

  /** The path of a file in the state dir. */
  file(name: string): string {
    return join(this.path, name);
  }

  writeJson(name: string, value: unknown): void {
    this.writeSecret(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** Atomic write (temp file + rename), readable by the owner only. */
  writeSecret(name: string, text: string): void {
    const file = join(this.path, name);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  }
}
