import { appendFileSync, readdirSync, readFileSync, renameSync, statSync, unlink, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { imagePath } from "./png/png-writer";

const OWNERS_FILE = "owners.jsonl";
const OwnerLine = z.object({ image: z.string(), client: z.string() });

/**
 * The rendered PNGs waiting to be fetched, in the state dir, and which app
 * each belongs to: an app fetches only its own. Coordinators fetch them within
 * seconds; the store keeps the newest `maxImages` so a node that is never
 * collected from cannot fill its disk. Owners are kept in a JSON-lines file
 * beside the images, so an image re-announced from the outbox after a restart
 * can still be fetched by its app.
 */
export class ImageStore {
  private readonly order: string[] = [];
  private readonly owners = new Map<string, string>();
  private readonly ownersFile: string;
  private ownerLines = 0;

  constructor(
    readonly dir: string,
    private readonly maxImages: number,
  ) {
    this.ownersFile = join(dir, OWNERS_FILE);
    this.loadOwners();
    const existing = readdirSync(dir)
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

  added(imageId: string, client: string): void {
    this.owners.set(imageId, client);
    appendFileSync(this.ownersFile, `${JSON.stringify({ image: imageId, client })}\n`, { mode: 0o600 });
    this.ownerLines++;
    this.order.push(imageId);
    this.prune();
  }

  private prune(): void {
    while (this.order.length > this.maxImages) {
      const id = this.order.shift() as string;
      this.owners.delete(id);
      unlink(this.path(id), () => undefined);
    }
    // The file only grows by appends: rewrite it with the live owners once it holds twice as many lines.
    if (this.ownerLines > 2 * Math.max(this.owners.size, this.maxImages)) this.compactOwners();
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
    writeFileSync(tmp, lines.join(""), { mode: 0o600 });
    renameSync(tmp, this.ownersFile);
    this.ownerLines = lines.length;
  }
}
