import {
  appendFileSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlink,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { imagePath, PARTIAL_SUFFIX } from "./png/png-path";

const OWNERS_FILE = "owners.jsonl";
/**
 * Images not yet fetched are kept up to this many times `maxImages`: an app that sleeps (a laptop shut for the night)
 * finds what a farm rendered for it meanwhile, rather than having it rendered again.
 */
const UNFETCHED_FACTOR = 10;
const OwnerLine = z.object({ image: z.string(), client: z.string() });

/**
 * The rendered PNGs waiting to be fetched, in the state dir, and which app
 * each belongs to: an app fetches only its own. Past `maxImages` the oldest
 * images their app has go first; images not fetched yet stay up to UNFETCHED_FACTOR
 * times as many, so a node that is never collected from cannot fill its disk
 * and an app away for a while loses nothing. Owners are kept in a JSON-lines
 * file beside the images, so an image re-announced from the outbox after a
 * restart can still be fetched by its app (which were fetched is not kept: a
 * restart counts them all as waiting).
 */
export class ImageStore {
  private readonly order: string[] = [];
  private readonly owners = new Map<string, string>();
  /** Images their app has (it acknowledged them, or a farm app fetched them whole): the first to go. */
  private readonly fetchedIds = new Set<string>();
  private readonly ownersFile: string;
  private ownerLines = 0;

  /** The owners file lacks owners known here (a write refused, the disk full): rewritten whole at the next image. */
  private ownersBehind = false;

  constructor(
    readonly dir: string,
    private readonly maxImages: number,
    /** A write of the owners file refused (the node goes on; its images stay fetchable while it runs). */
    private readonly onWriteError: (error: Error) => void = () => undefined,
  ) {
    this.ownersFile = join(dir, OWNERS_FILE);
    this.loadOwners();
    const files = readdirSync(dir);
    // PNGs a worker was writing when it died or the disk filled: never whole, never announced.
    for (const f of files) if (f.endsWith(`.png${PARTIAL_SUFFIX}`)) rmSync(join(dir, f), { force: true });
    const existing = files
      .filter((f) => f.endsWith(".png"))
      .map((f) => ({ id: f.slice(0, -4), mtime: statSync(`${dir}/${f}`).mtimeMs }))
      .sort((a, b) => a.mtime - b.mtime);
    for (const { id } of existing) this.order.push(id);
    this.prune();
  }

  /** Where an image's file is (or would be), whoever owns it: for the node's own use. */
  path(imageId: string): string {
    return imagePath(this.dir, imageId);
  }

  /** The file of `client`'s image; null when that app has no image by this id. */
  pathFor(imageId: string, client: string): string | null {
    return this.owners.get(imageId) === client ? this.path(imageId) : null;
  }

  /** The app an image on disk belongs to, if any. */
  ownerOf(imageId: string): string | undefined {
    return this.owners.get(imageId);
  }

  /**
   * Records an image's owner. A refused write (the disk full) loses nothing while the node runs: the owner is
   * known here and the file is rewritten whole once a write succeeds again; only a restart before then leaves
   * those images to nobody.
   */
  added(imageId: string, client: string): void {
    this.owners.set(imageId, client);
    this.order.push(imageId);
    this.prune();
    if (this.ownersBehind) {
      this.compactOwners();
      return;
    }
    try {
      appendFileSync(this.ownersFile, `${JSON.stringify({ image: imageId, client })}\n`, { mode: 0o600 });
      this.ownerLines++;
    } catch (error) {
      this.refused(error);
    }
  }

  /** An image its app has (see fetchedIds): it may go first once the store is full. */
  fetched(imageId: string): void {
    if (!this.owners.has(imageId) || this.fetchedIds.has(imageId)) return;
    this.fetchedIds.add(imageId);
    this.prune();
  }

  private prune(): void {
    let excess = this.order.length - this.maxImages;
    if (excess > 0 && this.fetchedIds.size > 0) {
      const kept = this.order.filter((id) => {
        if (excess === 0 || !this.fetchedIds.has(id)) return true;
        this.drop(id);
        excess--;
        return false;
      });
      this.order.length = 0;
      for (const id of kept) this.order.push(id);
    }
    while (this.order.length > this.maxImages * UNFETCHED_FACTOR) this.drop(this.order.shift() as string);
    // The file only grows by appends: rewrite it with the live owners once it holds twice as many lines.
    if (this.ownerLines > 2 * Math.max(this.owners.size, this.maxImages)) this.compactOwners();
  }

  private drop(id: string): void {
    this.owners.delete(id);
    this.fetchedIds.delete(id);
    unlink(this.path(id), () => undefined);
  }

  private loadOwners(): void {
    let text: string;
    try {
      text = readFileSync(this.ownersFile, "utf8");
    } catch {
      return;
    }
    for (const line of text.split("\n")) {
      if (line === "") continue;
      this.ownerLines++;
      try {
        const { image, client } = OwnerLine.parse(JSON.parse(line));
        this.owners.set(image, client);
      } catch {
        // A line cut short by a crash: that image has no known owner and is served to nobody.
      }
    }
  }

  private compactOwners(): void {
    const kept = new Set(this.order);
    for (const image of this.owners.keys()) if (!kept.has(image)) this.owners.delete(image);
    const tmp = `${this.ownersFile}.${process.pid}.tmp`;
    const lines = [...this.owners].map(([image, client]) => `${JSON.stringify({ image, client })}\n`);
    try {
      writeFileSync(tmp, lines.join(""), { mode: 0o600 });
      renameSync(tmp, this.ownersFile);
      this.ownerLines = lines.length;
      this.ownersBehind = false;
    } catch (error) {
      rmSync(tmp, { force: true });
      this.refused(error);
    }
  }

  private refused(error: unknown): void {
    if (!this.ownersBehind) this.onWriteError(error as Error);
    this.ownersBehind = true;
  }
}
