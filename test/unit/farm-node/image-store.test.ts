import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ImageStore } from "../../../farm-node/image-store";
import { waitUntil } from "../../support/wait-until";

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

  it("past its limit drops the oldest images their app fetched, and keeps unfetched ones up to ten times as many", async () => {
    const dir = storeDir();
    const store = new ImageStore(dir, 3);
    const add = (n: number) => {
      writeFileSync(join(dir, `img-${n}.png`), "png");
      store.added(`img-${n}`, "app-a");
    };
    for (let n = 0; n < 6; n++) add(n);
    // None fetched yet (the app asleep): all six kept, past the limit of three.
    expect([0, 1, 2, 3, 4, 5].map((n) => store.ownerOf(`img-${n}`))).toEqual(Array(6).fill("app-a"));
    store.fetched("img-4");
    store.fetched("img-1");
    // Fetched ones go, oldest first, until within the limit or none fetched is left.
    expect(store.ownerOf("img-1")).toBeUndefined();
    expect(store.ownerOf("img-4")).toBeUndefined();
    // The file goes too (removed in the background).
    await waitUntil(() => !existsSync(join(dir, "img-1.png")), 5_000, "img-1.png removed");
    expect(store.ownerOf("img-0")).toBe("app-a");
    for (let n = 6; n < 40; n++) add(n);
    // Ten times the limit at most: the oldest unfetched go then.
    expect(store.ownerOf("img-0")).toBeUndefined();
    expect(store.ownerOf("img-10")).toBe("app-a");
    expect(store.ownerOf("img-39")).toBe("app-a");
  });
});
