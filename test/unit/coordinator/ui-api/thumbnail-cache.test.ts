import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ThumbnailCache } from "../../../../coordinator/ui-api/thumbnail-cache";
import { parseThumbnailSize, THUMBNAIL_SIZES } from "../../../../shared/thumbnail-sizes";
import { pngBomb } from "../../../support/forged-pngs";

let base: string;
let dataDir: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "kiln-thumbs-"));
  dataDir = join(base, "data");
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

async function writePng(name: string, width: number, height: number, colour: { r: number; g: number; b: number }) {
  const file = join(base, name);
  writeFileSync(
    file,
    await sharp({ create: { width, height, channels: 3, background: colour } })
      .png()
      .toBuffer(),
  );
  return file;
}

const RED = { r: 220, g: 20, b: 20 };
const BLUE = { r: 20, g: 20, b: 220 };

describe("thumbnail sizes", () => {
  it("are a fixed set; anything else is refused naming the field and the fix", () => {
    expect(THUMBNAIL_SIZES).toEqual([256, 512]);
    expect(parseThumbnailSize(undefined)).toEqual({ size: null });
    expect(parseThumbnailSize(null)).toEqual({ size: null });
    expect(parseThumbnailSize("256")).toEqual({ size: 256 });
    expect(parseThumbnailSize("512")).toEqual({ size: 512 });
    for (const raw of ["128", "257", "256.0", " 256", "0x100", "", "-256", "99999999", ["256", "512"], 256]) {
      const parsed = parseThumbnailSize(raw);
      expect(parsed, JSON.stringify(raw)).toEqual({ error: expect.stringMatching(/^size must be one of 256, 512/) });
      expect("error" in parsed && parsed.error).toMatch(/leave it out for the full image/);
    }
  });
});

describe("ThumbnailCache (real sharp, real files)", () => {
  it("makes a WebP no larger than the size asked, keeping the aspect and never enlarging", async () => {
    const cache = new ThumbnailCache({ dataDir });
    const wide = await writePng("wide.png", 512, 256, RED);
    const small = await writePng("small.png", 100, 80, RED);
    for (const size of THUMBNAIL_SIZES) {
      const meta = await sharp(await cache.file(wide, size)).metadata();
      expect(meta.format).toBe("webp");
      expect([meta.width, meta.height]).toEqual(size === 256 ? [256, 128] : [512, 256]);
    }
    const meta = await sharp(await cache.file(small, 256)).metadata();
    expect([meta.width, meta.height]).toEqual([100, 80]);
  });

  it("keeps thumbnails under the data dir, private, written whole (no temporary files left)", async () => {
    const cache = new ThumbnailCache({ dataDir });
    const file = await cache.file(await writePng("a.png", 512, 512, RED), 256);
    expect(cache.dir).toBe(join(dataDir, "thumbnails"));
    expect(file.startsWith(`${cache.dir}/`)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(cache.dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(cache.dir).filter((name) => !name.endsWith(".webp"))).toEqual([]);
  });

  it("answers a second request from the cache, also in a new process's cache, without encoding again", async () => {
    const source = await writePng("a.png", 512, 512, RED);
    const first = await new ThumbnailCache({ dataDir }).file(source, 256);
    const made = statSync(first);
    // An encode would write a new file and rename it over this one: a new inode.
    const again = await new ThumbnailCache({ dataDir }).file(source, 256);
    expect(again).toBe(first);
    expect(statSync(again).ino).toBe(made.ino);
    expect(statSync(again).mtimeMs).toBe(made.mtimeMs);
    // Another size is another thumbnail.
    expect(await new ThumbnailCache({ dataDir }).file(source, 512)).not.toBe(first);
    expect(readdirSync(join(dataDir, "thumbnails"))).toHaveLength(2);
  });

  it("makes a new thumbnail when the source changes", async () => {
    const cache = new ThumbnailCache({ dataDir });
    const source = await writePng("a.png", 512, 512, RED);
    const before = await cache.file(source, 256);
    await writePng("a.png", 512, 512, BLUE);
    // Same size in bytes (one flat colour each); the mtime tells them apart, set apart here in case both writes share a tick.
    const later = new Date(statSync(source).mtimeMs + 10_000);
    utimesSync(source, later, later);
    const after = await cache.file(source, 256);
    expect(after).not.toBe(before);
    const { data } = await sharp(after).raw().toBuffer({ resolveWithObject: true });
    expect(data[2]).toBeGreaterThan(150);
    expect(data[0]).toBeLessThan(80);
  });

  it("never encodes for a request that went away before its turn", async () => {
    const cache = new ThumbnailCache({ dataDir, limits: { running: 1 } });
    const kept = cache.file(await writePng("a.png", 512, 512, RED), 256);
    const client = new AbortController();
    const abandoned = cache.file(await writePng("b.png", 512, 512, BLUE), 256, { signal: client.signal });
    client.abort(new Error("the cell scrolled away"));
    await expect(abandoned).rejects.toThrow("the cell scrolled away");
    await kept;
    expect(readdirSync(cache.dir)).toHaveLength(1);
  });

  it("refuses files that are no image it should decode, saying why", async () => {
    const cache = new ThumbnailCache({ dataDir });
    const text = join(base, "text.png");
    writeFileSync(text, "png bytes");
    await expect(cache.file(text, 256)).rejects.toThrow(/^could not make a thumbnail of this image: .+/);
    // A header claiming 20,000² pixels is refused before anything that size is allocated.
    const bomb = join(base, "bomb.png");
    writeFileSync(bomb, pngBomb(20_000, 20_000));
    await expect(cache.file(bomb, 256)).rejects.toThrow(/could not make a thumbnail of this image: .*pixel limit/);
    await expect(cache.file(join(base, "missing.png"), 256)).rejects.toThrow(/ENOENT/);
  });
});
