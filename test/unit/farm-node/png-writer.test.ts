import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodePixels, savePng } from "../../../farm-node/png/png-writer";

const dir = mkdtempSync(join(tmpdir(), "kiln-png-writer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("savePng", () => {
  it("leaves no partial file when the disk refuses the write (ENOSPC from /dev/full), and says why", async () => {
    const encoded = await encodePixels({ rgb: Buffer.alloc(8 * 8 * 3, 128), width: 8, height: 8 });
    // The part being written goes to a full disk.
    symlinkSync("/dev/full", join(dir, "img-full.png.tmp"));
    await expect(savePng(dir, "img-full", encoded, "a prompt", {}, performance.now())).rejects.toMatchObject({
      code: "ENOSPC",
    });
    expect(existsSync(join(dir, "img-full.png.tmp"))).toBe(false);
    expect(existsSync(join(dir, "img-full.png"))).toBe(false);
  });
});
