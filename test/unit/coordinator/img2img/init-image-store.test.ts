import { mkdtempSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { InitImageStore } from "../../../../coordinator/img2img/init-image-store";
import { readPngSize } from "../../../../coordinator/results/png-structure";
import { KilnError } from "../../../../shared/errors";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function store(): InitImageStore {
  const dir = mkdtempSync(join(tmpdir(), "kiln-init-store-"));
  dirs.push(dir);
  return new InitImageStore(dir);
}

const noise = (width: number, height: number) =>
  sharp({
    create: { width, height, channels: 3, background: "#808080", noise: { type: "gaussian", mean: 128, sigma: 40 } },
  });

describe("the app's init image store", () => {
  it("refuses a PNG cut short after a readable header, naming the field, and keeps nothing", async () => {
    const png = await noise(256, 256).png().toBuffer();
    const images = store();
    const cut = png.subarray(0, Math.floor(png.length * 0.6));
    const refused = await images.put(cut, "mask").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(KilnError);
    expect((refused as KilnError).message).toMatch(/^the mask is cut short or corrupt/);
    expect((refused as KilnError).fields).toEqual([{ path: "mask", message: "is cut short or corrupt" }]);
    expect(readdirSync(images.dir)).toEqual([]);
  });

  it("answers the size of the PNG it stored: a JPEG turned by its EXIF orientation is stored upright", async () => {
    const jpeg = await noise(200, 100).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const images = store();
    const stored = await images.put(jpeg);
    expect(stored).toMatchObject({ width: 100, height: 200, created: true });
    expect(readPngSize((await images.get(stored.sha256)) as Buffer)).toEqual({ width: 100, height: 200 });
  });

  it("says whether it wrote the picture or already had it (the A1111 API removes only what it stored)", async () => {
    const png = await noise(64, 64).png().toBuffer();
    const images = store();
    expect((await images.put(png)).created).toBe(true);
    expect((await images.put(png)).created).toBe(false);
  });

  it("prunes pictures no job names once a day old, keeping named and recent ones and the ones stored again", async () => {
    const images = store();
    const [kept, old, fresh, again] = await Promise.all(
      [1, 2, 3, 4].map(
        async (n) =>
          (
            await images.put(
              await noise(16 + n, 16)
                .png()
                .toBuffer(),
            )
          ).sha256,
      ),
    );
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    for (const sha of [kept, old, again]) {
      const then = new Date(now - 2 * day);
      utimesSync(join(images.dir, `${sha}.png`), then, then);
    }
    // Stored again today (another drop of the same picture): as new as a fresh one.
    await images.put((await images.get(again as string)) as Buffer);
    expect(images.prune(new Set([kept as string]), day, now)).toBe(1);
    expect([kept, old, fresh, again].map((sha) => images.has(sha as string))).toEqual([true, false, true, true]);
  });
});
