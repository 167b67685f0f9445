import { readdirSync, statSync, unlink } from "node:fs";
import { imagePath } from "./png/png-writer";

/**
 * The rendered PNGs waiting to be fetched, in the state dir. Coordinators fetch
 * them within seconds; the store keeps the newest `maxImages` so a node that is
 * never collected from cannot fill its disk.
 */
export class ImageStore {
  private readonly order: string[] = [];

  constructor(
    readonly dir: string,
    private readonly maxImages: number,
  ) {
    const existing = readdirSync(dir)
      .filter((f) => f.endsWith(".png"))
      .map((f) => ({ id: f.slice(0, -4), mtime: statSync(`${dir}/${f}`).mtimeMs }))
      .sort((a, b) => a.mtime - b.mtime);
    for (const { id } of existing) this.order.push(id);
    this.prune();
  }

  path(imageId: string): string {
    return imagePath(this.dir, imageId);
  }

  added(imageId: string): void {
    this.order.push(imageId);
    this.prune();
  }

  private prune(): void {
    while (this.order.length > this.maxImages) {
      const id = this.order.shift() as string;
      unlink(this.path(id), () => undefined);
    }
  }
}
