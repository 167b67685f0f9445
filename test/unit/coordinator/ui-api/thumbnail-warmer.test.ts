import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CoordinatorEvents } from "../../../../coordinator/coordinator";
import { ThumbnailCache } from "../../../../coordinator/ui-api/thumbnail-cache";
import { warmThumbnails } from "../../../../coordinator/ui-api/thumbnail-warmer";
import { waitUntil } from "../../../support/wait-until";
import { image } from "../../renderer/ui-fixtures";

let base: string;
let output: string;
let cache: ThumbnailCache;
let coordinator: EventEmitter<CoordinatorEvents>;

beforeEach(async () => {
  base = mkdtempSync(join(tmpdir(), "kiln-thumb-warm-"));
  output = join(base, "out");
  mkdirSync(output);
  const png = await sharp({ create: { width: 512, height: 512, channels: 3, background: "#864" } })
    .png()
    .toBuffer();
  writeFileSync(join(output, "0001.png"), png);
  writeFileSync(join(base, "outside.png"), png);
  symlinkSync(join(base, "outside.png"), join(output, "escape.png"));
  cache = new ThumbnailCache({ dataDir: join(base, "data") });
  // The coordinator's seam to the UI: its "ui" events.
  coordinator = new EventEmitter<CoordinatorEvents>();
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

const done = (path: string | null) => ({
  type: "image.done" as const,
  image: image({ id: "i1", jobId: "j1", index: 0, state: "done", path }),
});
/** Time for any encode still queued to land. */
const settle = () => new Promise((r) => setTimeout(r, 300));
const made = () => (existsSync(cache.dir) ? readdirSync(cache.dir) : []);

describe("thumbnails made as images are stored", () => {
  it("makes the 1× cell thumbnail of each stored image in the output folder, nothing else", async () => {
    const stop = warmThumbnails(coordinator, output, cache, pino({ level: "silent" }));
    coordinator.emit("ui", done(join(base, "outside.png")));
    coordinator.emit("ui", done(join(output, "escape.png")));
    coordinator.emit("ui", done(null));
    coordinator.emit("ui", { type: "nodes.changed", nodes: [] });
    coordinator.emit("ui", done(join(output, "0001.png")));
    await waitUntil(() => made().length > 0, 10_000, "a thumbnail");
    await settle();
    expect(made()).toHaveLength(1);
    const meta = await sharp(join(cache.dir, made()[0] as string)).metadata();
    expect([meta.format, meta.width]).toEqual(["webp", 256]);
    // The page asking for it afterwards gets that file.
    expect(await cache.file(join(output, "0001.png"), 256)).toBe(join(cache.dir, made()[0] as string));

    stop();
    writeFileSync(join(output, "0002.png"), await sharp(join(output, "0001.png")).toBuffer());
    coordinator.emit("ui", done(join(output, "0002.png")));
    await settle();
    expect(made()).toHaveLength(1);
  });
});
