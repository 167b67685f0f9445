import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ImageStore } from "../../../farm-node/image-store";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function storeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-image-store-"));
  dirs.push(dir);
  return dir;
}

describe("the node's image store", () => {
  it("keeps serving an image's owner when the disk refuses the owners file (ENOSPC from /dev/full), and writes it whole once it can", () => {
    const dir = storeDir();
    const refused: string[] = [];
    const store = new ImageStore(dir, 10, (error) => refused.push((error as NodeJS.ErrnoException).code ?? ""));
    // Every write to the owners file now fails as on a full disk, until the file is replaced (space freed).
    symlinkSync("/dev/full", join(dir, "owners.jsonl"));
    expect(() => store.added("img-1", "app-a")).not.toThrow();
    expect(store.ownerOf("img-1")).toBe("app-a");
    expect(refused).toEqual(["ENOSPC"]);

    // The next image rewrites the whole file (into a new file beside it, renamed over the refused one).
    store.added("img-2", "app-b");
    expect(refused).toEqual(["ENOSPC"]);
    const restarted = new ImageStore(dir, 10);
    expect([restarted.ownerOf("img-1"), restarted.ownerOf("img-2")]).toEqual(["app-a", "app-b"]);
    expect(readFileSync(join(dir, "owners.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
  });

  it("removes PNGs left half-written by a worker that died or a disk that filled, and keeps whole ones", () => {
    const dir = storeDir();
    writeFileSync(join(dir, "img-whole.png"), "png");
    writeFileSync(join(dir, "img-cut.png.tmp"), "pn");
    new ImageStore(dir, 10);
    expect(existsSync(join(dir, "img-cut.png.tmp"))).toBe(false);
    expect(existsSync(join(dir, "img-whole.png"))).toBe(true);
  });
});
