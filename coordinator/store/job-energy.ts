import type { Database } from "better-sqlite3";
import { statement } from "./database";

export interface JobEnergy {
  /** Joules its stored images cost (their shares of their batches' draw above idle). */
  joules: number;
  /** How many of its stored images had their energy measured (nodes that measure none report none). */
  images: number;
}

/**
 * Each job's energy: the sum of its stored images' `energyJ`, kept with each
 * result's timings in the ledger (one record per image of what its node
 * reported). Read from the ledger once per job, then kept up to date as its
 * images are stored, so a queue of jobs is summed without a scan per view.
 */
export class JobEnergyBook {
  private readonly known = new Map<string, JobEnergy>();

  constructor(private readonly db: Database) {}

  of(jobId: string): JobEnergy {
    let energy = this.known.get(jobId);
    if (!energy) {
      const row = statement<[string], { joules: number; images: number }>(
        this.db,
        `SELECT total(json_extract(r.timings, '$.energyJ')) AS joules, count(json_extract(r.timings, '$.energyJ')) AS images
           FROM images i JOIN results r ON r.image_id = i.id WHERE i.job_id = ?`,
      ).get(jobId);
      energy = { joules: row?.joules ?? 0, images: row?.images ?? 0 };
      this.known.set(jobId, energy);
      if (this.known.size > 10_000) this.known.delete(this.known.keys().next().value as string);
    }
    return energy;
  }

  /** An image of the job was stored with this energy (already in the ledger). */
  stored(jobId: string, joules: number): void {
    const energy = this.known.get(jobId);
    if (!energy) return;
    energy.joules += joules;
    energy.images++;
  }
}
