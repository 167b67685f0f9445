import { randomFillSync } from "node:crypto";

/** Random bytes drawn from the OS at once, for this many ids: one call per id cost as much as the rest of a dispatch. */
const POOL_IDS = 512;
const RANDOM_BYTES = 7;

let last = 0;
let counter = 0;
const pool = Buffer.alloc(POOL_IDS * RANDOM_BYTES);
let used = pool.length;

/**
 * Mints ids for jobs (`j_`), images (`i_`), attempts (`a_`) and tasks (`t_`):
 * a prefix and 32 hex digits, 34 characters, within shared/ids.ts's SafeId
 * because image and attempt ids travel to nodes in URL paths. The digits are
 * the time in ms, a counter and 56 random bits, so ids made later sort later:
 * a job's images, and the attempts and tasks of one tick, sit side by side in
 * the ledger's tables and indexes, and a tick's writes touch a few pages of
 * them rather than one page per row. The random bits come from a pool refilled
 * by the CSPRNG, each byte used once.
 */
export function newId(prefix: "j" | "i" | "a" | "t"): string {
  const now = Date.now();
  counter = now === last ? counter + 1 : 0;
  last = now;
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const random = pool.toString("hex", used, used + RANDOM_BYTES);
  used += RANDOM_BYTES;
  return `${prefix}_${now.toString(16).padStart(12, "0")}${(counter % 0x1000000).toString(16).padStart(6, "0")}${random}`;
}
