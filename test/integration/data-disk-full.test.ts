import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { startUiServer } from "../../coordinator/ui-api/ui-server";
import { tempDir } from "../support/temp-dir";
import { connectUi } from "../support/ui-client";

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("SKIPPED the app's own disk full: mounting its tmpfs needs root (CI runs as root)");

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(!isRoot)("the disk holding the app's data dir fills up (a 4 MiB tmpfs)", () => {
  it("the UI is told the disk is full and what to do (E_DISK_FULL), not an internal error naming a temporary file", async () => {
    const mount = tempDir("kiln-data-tmpfs-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mount]);
    cleanups.push(() => execFileSync("umount", ["-l", mount]));
    const dataDir = join(mount, "data");
    mkdirSync(dataDir);
    const coordinator = new Coordinator({
      dataDir,
      outputDir: tempDir("kiln-data-full-out-"),
      localNode: false,
      discovery: false,
      clientName: "test",
      log: pino({ level: "silent" }),
    });
    await coordinator.start();
    cleanups.push(() => coordinator.stop());
    const token = "t0ken-for-the-disk-full-test";
    const server = await startUiServer({
      coordinator,
      host: "127.0.0.1",
      port: 0,
      token,
      log: pino({ level: "silent" }),
      outputDir: tempDir("kiln-data-full-ui-out-"),
      dataDir,
      uiDir: null,
    });
    cleanups.push(() => server.app.close());
    const ui = await connectUi(server.port, token);
    cleanups.push(() => ui.close());
    // Something else takes the rest of the disk.
    try {
      writeFileSync(join(mount, "filler"), Buffer.alloc(8 * 2 ** 20));
    } catch {
      // ENOSPC: the disk is full now, as intended.
    }
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#a52" } })
      .png()
      .toBuffer();
    const refused = await ui.call("storeInitImage", { data: png.toString("base64") }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: "E_DISK_FULL",
      message:
        "the disk holding Kiln's data dir (its queue file and init images) is full: free some space there, then try again",
    });
  }, 60_000);
});
