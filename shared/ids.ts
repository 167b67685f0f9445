import { z } from "zod";

/**
 * Ids chosen by the coordinator (tasks, images) and used in URL paths. Only
 * letters, digits, `-` and `_`, so an id can never become a path trick.
 */
export const SafeId = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9_-]+$/, "may only contain letters, digits, '-' and '_'");
export type SafeId = z.infer<typeof SafeId>;
