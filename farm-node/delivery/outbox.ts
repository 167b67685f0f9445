import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import type { NodeEventBody } from "../../shared/node-events";

const Entry = z.object({ delivery: z.number().int().positive(), event: z.record(z.string(), z.unknown()) });
export interface OutboxEntry {
  delivery: number;
  event: NodeEventBody;
}

/** Compaction rewrites the file once this many acknowledged lines have piled up. */
const COMPACT_AFTER = 500;

/**
 * One client's outcomes that it has not acknowledged yet, in order, on disk:
 * an append-only JSON-lines file of entries plus `ack` lines, rewritten when
 * acknowledged lines pile up. A coordinator that was down, or a link that was
 * cut, gets every outcome again on its next connection; the node may restart
 * in between. Bounded: past `capacity` the oldest entries are dropped (their
 * images are past the node's image store by then anyway).
 */
export class Outbox {
  private readonly pending = new Map<number, NodeEventBody>();
  private next = 1;
  private acknowledgedLines = 0;
  /** The file lags what is pending (a write failed): the next write rewrites it whole. */
  private unsaved = false;
  /** The file could not be read: it is left as it is for the next start, never overwritten with less than it holds. */
  private detached = false;

  constructor(
    private readonly file: string,
    private readonly capacity = 5000,
    /** A write failed (a full disk) or the file could not be read: outcomes still go out, but may not outlive a restart. */
    private readonly onUnsaved: (error: Error) => void = () => undefined,
  ) {
    let loaded = false;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      if (existsSync(file)) {
        this.load();
        loaded = true;
      }
    } catch (error) {
      this.detached = true;
      this.onUnsaved(error as Error);
    }
    // What was read goes back compacted: acknowledged lines and a line cut by a crash are gone from the file.
    if (loaded) this.save(() => this.compact());
  }

  /** Numbers and stores an outcome; returns its delivery number. */
  append(event: NodeEventBody): number {
    const delivery = this.next++;
    this.pending.set(delivery, event);
    this.save(() => appendFileSync(this.file, `${JSON.stringify({ delivery, event })}\n`, { mode: 0o600 }));
    if (this.pending.size > this.capacity) {
      const oldest = this.pending.keys().next().value as number;
      this.ack(oldest);
    }
    return delivery;
  }

  /** Forgets an acknowledged outcome (a repeated or unknown number is ignored). */
  ack(delivery: number): NodeEventBody | undefined {
    const event = this.pending.get(delivery);
    if (!event) return undefined;
    this.pending.delete(delivery);
    this.save(() => appendFileSync(this.file, `${JSON.stringify({ ack: delivery })}\n`));
    if (++this.acknowledgedLines >= COMPACT_AFTER) this.save(() => this.compact());
    return event;
  }

  /** Unacknowledged outcomes, oldest first. */
  entries(): OutboxEntry[] {
    return [...this.pending].map(([delivery, event]) => ({ delivery, event }));
  }

  get size(): number {
    return this.pending.size;
  }

  private load(): void {
    for (const line of readFileSync(this.file, "utf8").split("\n")) {
      if (!line) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        // A line cut by a crash mid-write: everything before it is intact.
        continue;
      }
      const ack = z.object({ ack: z.number().int() }).safeParse(parsed);
      if (ack.success) {
        this.pending.delete(ack.data.ack);
        continue;
      }
      const header = z.object({ next: z.number().int().positive() }).safeParse(parsed);
      if (header.success) {
        this.next = Math.max(this.next, header.data.next);
        continue;
      }
      const entry = Entry.safeParse(parsed);
      if (!entry.success) continue;
      this.pending.set(entry.data.delivery, entry.data.event as unknown as NodeEventBody);
      this.next = Math.max(this.next, entry.data.delivery + 1);
    }
  }

  /**
   * Runs a write; after one failed, the file is rewritten whole instead (a cut
   * line may sit at its end). A failure never reaches the caller: the event
   * that brought it is often the one saying the disk is full, and it must
   * still go out.
   */
  private save(write: () => void): void {
    if (this.detached) return;
    try {
      if (this.unsaved) this.compact();
      else write();
      this.unsaved = false;
    } catch (error) {
      if (!this.unsaved) this.onUnsaved(error as Error);
      this.unsaved = true;
    }
  }

  private compact(): void {
    const tmp = `${this.file}.tmp`;
    // The next number heads the file, so numbers never repeat even when nothing is pending.
    const lines = [{ next: this.next }, ...[...this.pending].map(([delivery, event]) => ({ delivery, event }))];
    writeFileSync(tmp, `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.acknowledgedLines = 0;
  }
}
