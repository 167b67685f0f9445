import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { PackProblem } from "./pack-problem";

/** Reads and validates a JSON file of a pack; every failure names the file and the field. */
export function readPackJson<T extends z.ZodType>(dir: string, file: string, schema: T): z.infer<T> {
  const path = join(dir, file);
  if (!existsSync(path)) throw new PackProblem(`${file} is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new PackProblem(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PackProblem(`${file}: ${issue?.path.join(".") || "(top level)"} ${issue?.message ?? "is invalid"}`);
  }
  return parsed.data;
}

export function optionalPackJson<T extends z.ZodType>(dir: string, file: string, schema: T): z.infer<T> | null {
  return existsSync(join(dir, file)) ? readPackJson(dir, file, schema) : null;
}
