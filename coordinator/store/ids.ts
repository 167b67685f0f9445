import { randomUUID } from "node:crypto";

/**
 * Mints ids for jobs (`j_`), images (`i_`) and attempts (`a_`): a prefix and a
 * dashless uuid, 34 characters, within shared/ids.ts's SafeId because image and
 * attempt ids travel to nodes in URL paths.
 */
export function newId(prefix: "j" | "i" | "a"): string {
  return `${prefix}_${randomUUID().replaceAll("-", "")}`;
}
