import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ThumbnailCache } from "../../../coordinator/ui-api/thumbnail-cache";
import { createImageProtocol } from "../../../electron/main/image-protocol";
import { THUMBNAIL_SIZES } from "../../../shared/thumbnail-sizes";
import { outputEscapes } from "../../support/output-escapes";

let base: string;
let output: string;
let outside: string;
let dataDir: string;
let serve: ReturnType<typeof createImageProtocol>;

beforeEach(async () => {
  base = realpathSync(mkdtempSync(join(tmpdir(), "kiln-image-protocol-")));
  output = join(base, "Kiln");
  outside = join(base, "private");
  dataDir = join(base, "data");
  mkdirSync(join(output, "2025-01-01 lighthouse"), { recursive: true });
  mkdirSync(outside);
  const png = await sharp({ create: { width: 512, height: 384, channels: 3, background: { r: 9, g: 99, b: 199 } } })
    .png()
    .toBuffer();
  writeFileSync(image(), png);
  writeFileSync(join(output, "run-me.sh"), "#!/bin/sh\n");
  writeFileSync(join(outside, "secret.png"), png);
  // A link inside the output folder that points out of it.
  symlinkSync(join(outside, "secret.png"), join(output, "escape.png"));
  symlinkSync(outside, join(output, "escape-dir"));
  serve = createImageProtocol(output, new ThumbnailCache({ dataDir }));
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

const image = () => join(output, "2025-01-01 lighthouse", "0001.png");
const url = (path: string, size?: string) =>
  `kiln-image://image/?path=${encodeURIComponent(path)}${size === undefined ? "" : `&size=${size}`}`;
const escapes = () => [...outputEscapes(output, outside, image()), join(output, "run-me.sh")];

describe("kiln-image:// protocol", () => {
  it("serves a PNG under the output folder", async () => {
    const response = await serve({ url: url(image()) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect((await sharp(Buffer.from(await response.arrayBuffer())).metadata()).width).toBe(512);
  });

  it("serves WebP thumbnails of it at the fixed sizes, cached under the data dir", async () => {
    for (const size of THUMBNAIL_SIZES) {
      const response = await serve({ url: url(image(), String(size)) });
      expect(response.status, String(size)).toBe(200);
      expect(response.headers.get("content-type")).toBe("image/webp");
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      expect(meta.format).toBe("webp");
      expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBe(Math.min(size, 512));
    }
    expect(readdirSync(join(dataDir, "thumbnails"))).toHaveLength(THUMBNAIL_SIZES.length);
  });

  it("refuses other sizes with 400, saying which are served", async () => {
    for (const size of ["300", "0", "256px", ""]) {
      const response = await serve({ url: url(image(), size) });
      expect(response.status, size).toBe(400);
      expect(await response.text()).toMatch(/^size must be one of 256, 512/);
    }
    expect(existsSync(join(dataDir, "thumbnails"))).toBe(false);
  });

  it("answers 404 for escapes, other files, a missing path and a gone output folder, thumbnail or not", async () => {
    for (const size of [undefined, "256"]) {
      for (const target of escapes()) {
        const response = await serve({ url: url(target, size) });
        expect(response.status, `${target} ${size}`).toBe(404);
      }
    }
    expect(existsSync(join(dataDir, "thumbnails"))).toBe(false);
    expect((await serve({ url: "kiln-image://image/" })).status).toBe(404);
    expect((await serve({ url: "kiln-image://image/?size=256" })).status).toBe(404);
    expect((await serve({ url: "::not a url" })).status).toBe(404);
    rmSync(output, { recursive: true });
    expect((await serve({ url: url(image()) })).status).toBe(404);
    expect((await serve({ url: url(image(), "256") })).status).toBe(404);
  });

  it("makes no thumbnail for a request the window gave up on", async () => {
    const response = await serve({ url: url(image(), "256"), signal: AbortSignal.abort() });
    expect(response.status).toBe(499);
    expect(existsSync(join(dataDir, "thumbnails"))).toBe(false);
  });

  it("serves the init image store's pictures by sha256 at kiln-image://init-image/, nothing else there", async () => {
    const png = Buffer.from("a stored init image");
    const sha256 = "ab".repeat(32);
    const asked: string[] = [];
    const withInit = createImageProtocol(output, new ThumbnailCache({ dataDir }), async (hash) => {
      asked.push(hash);
      return hash === sha256 ? png : null;
    });
    const response = await withInit({ url: `kiln-image://init-image/${sha256}.png` });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await response.arrayBuffer()).equals(png)).toBe(true);
    for (const name of [`${"cd".repeat(32)}.png`, sha256, `${sha256.toUpperCase()}.png`, `..%2F${sha256}.png`, ""])
      expect((await withInit({ url: `kiln-image://init-image/${name}` })).status, name).toBe(404);
    // Only well-formed names reach the store.
    expect(asked).toEqual([sha256, "cd".repeat(32)]);
    // Without a store (no coordinator yet) there is none.
    expect((await serve({ url: `kiln-image://init-image/${sha256}.png` })).status).toBe(404);
  });
});
